"""An APScheduler 3 job store in the catalog database that keeps jobs as JSON.

APScheduler's own SQLAlchemyJobStore pickles each job, and unpickling a
database row can run arbitrary code. This store writes a job as plain
JSON (id, arguments, cron fields, time zone, jitter and run options) and
rebuilds it with the one callable the store was given, so a row can only
ever start that callable. Only cron triggers are stored.

Persisting the next run time is what lets a restarted service notice a
run it missed while it was down, and run it once (coalesced) within the
misfire grace time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mirror.catalog.session import Catalog
from mirror.scheduler.models import ScheduledJob

logger = logging.getLogger(__name__)

JOBS = ScheduledJob.__table__
STATE_VERSION = 1


class CatalogJobStore(BaseJobStore):
    """Jobs in the `scheduler_jobs` table; every job calls `func` with its stored arguments."""

    def __init__(self, catalog: Catalog, func: Callable[..., Any]):
        super().__init__()
        self.catalog = catalog
        self.func = func

    def lookup_job(self, job_id: str) -> Job | None:
        found = self._jobs(JOBS.c.id == job_id)
        return found[0] if found else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self._jobs(JOBS.c.next_run_time <= datetime_to_utc_timestamp(now))

    def get_next_run_time(self) -> datetime | None:
        query = (
            select(JOBS.c.next_run_time)
            .where(JOBS.c.next_run_time.is_not(None))
            .order_by(JOBS.c.next_run_time)
            .limit(1)
        )
        with self.catalog.engine.connect() as connection:
            return utc_timestamp_to_datetime(connection.execute(query).scalar())

    def get_all_jobs(self) -> list[Job]:
        jobs = self._jobs()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def add_job(self, job: Job) -> None:
        row = {"id": job.id, "next_run_time": datetime_to_utc_timestamp(job.next_run_time), "state": self._state(job)}
        try:
            with self.catalog.engine.begin() as connection:
                connection.execute(insert(JOBS).values(**row))
        except IntegrityError:
            raise ConflictingIdError(job.id) from None

    def update_job(self, job: Job) -> None:
        values = {"next_run_time": datetime_to_utc_timestamp(job.next_run_time), "state": self._state(job)}
        with self.catalog.engine.begin() as connection:
            result = connection.execute(update(JOBS).where(JOBS.c.id == job.id).values(**values))
        if result.rowcount == 0:
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        with self.catalog.engine.begin() as connection:
            result = connection.execute(delete(JOBS).where(JOBS.c.id == job_id))
        if result.rowcount == 0:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        with self.catalog.engine.begin() as connection:
            connection.execute(delete(JOBS))

    def shutdown(self) -> None:
        # The catalog's engine belongs to the service, which disposes of it.
        pass

    # JSON form

    def _state(self, job: Job) -> dict[str, Any]:
        # Bound methods are new objects on each access but compare equal.
        if job.func != self.func:
            raise ValueError(f"job {job.id} calls {job.func!r}; this store only stores jobs that call {self.func!r}")
        if not isinstance(job.trigger, CronTrigger):
            raise ValueError(f"job {job.id} has a {type(job.trigger).__name__}; this store only stores cron triggers")
        return {
            "version": STATE_VERSION,
            "name": job.name,
            "args": list(job.args),
            "kwargs": dict(job.kwargs),
            "cron": cron_fields(job.trigger),
            "timezone": str(job.trigger.timezone),
            "jitter": job.trigger.jitter,
            "misfire_grace_time": job.misfire_grace_time,
            "coalesce": job.coalesce,
            "max_instances": job.max_instances,
            "executor": job.executor,
        }

    def _rebuild(self, job_id: str, state: dict[str, Any]) -> Job:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"job {job_id} has state version {state.get('version')!r}; expected {STATE_VERSION}")
        trigger = CronTrigger(**state["cron"], timezone=state["timezone"], jitter=state["jitter"])
        job = Job.__new__(Job)
        job.__setstate__(
            {
                "version": 1,
                "id": job_id,
                # __setstate__ resolves a textual reference; the real callable is set just below.
                "func": "builtins:print",
                "trigger": trigger,
                "executor": state["executor"],
                "args": tuple(state["args"]),
                "kwargs": dict(state["kwargs"]),
                "name": state["name"],
                "misfire_grace_time": state["misfire_grace_time"],
                "coalesce": state["coalesce"],
                "max_instances": state["max_instances"],
                "next_run_time": None,
            }
        )
        job.func = self.func
        job.func_ref = None
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _jobs(self, *conditions) -> list[Job]:
        query = select(JOBS.c.id, JOBS.c.next_run_time, JOBS.c.state).order_by(JOBS.c.next_run_time)
        if conditions:
            query = query.where(*conditions)
        jobs, broken = [], []
        with self.catalog.engine.connect() as connection:
            rows = connection.execute(query).all()
        for row in rows:
            try:
                job = self._rebuild(row.id, row.state)
            except (KeyError, TypeError, ValueError) as exc:
                logger.error("scheduled job %s cannot be rebuilt (%s); it is removed and recreated from the config", row.id, exc)
                broken.append(row.id)
                continue
            job.next_run_time = utc_timestamp_to_datetime(row.next_run_time)
            jobs.append(job)
        if broken:
            with self.catalog.engine.begin() as connection:
                connection.execute(delete(JOBS).where(JOBS.c.id.in_(broken)))
        return jobs


def cron_fields(trigger: CronTrigger) -> dict[str, str]:
    """Return the explicitly set fields of a cron trigger as CronTrigger keyword arguments."""
    return {field.name: str(field) for field in trigger.fields if not field.is_default}
