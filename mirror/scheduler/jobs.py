"""Sync cycles of one upstream, and the APScheduler set-up that starts them on a cron schedule.

A cycle is: sync one upstream with the whitelist in force, then validate
and publish. Locking works in two layers:

* The sync step holds the database lease `sync:<upstream>`, so one
  upstream is synced by at most one process at a time, across replicas.
  A trigger that finds the lease held is skipped and logged, never
  queued. Different upstreams sync in parallel.
* Validate and publish work on every upstream's files and write the
  shared channel folder, so they run under the lease `publish` and, inside
  it, the data folder's file lock `jobs.lock` that the CLI commands take.
  A cycle waits for both instead of skipping, because its new downloads
  must be validated. The file lock keeps a CLI `mirror publish` and the
  service apart on one machine; the lease does the same across replicas.

Blocking steps (validation, publishing) run in a worker thread. Once such a
step has started it runs to its end even when the cycle is cancelled,
because a thread cannot be stopped safely. The leases are released only
after it ends, so no second publisher can start beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select

from mirror.catalog.models import Artifact, RunStatus
from mirror.config.operations import SchedulerConfig
from mirror.errors import ConfigError
from mirror.jobs.context import MirrorContext
from mirror.jobs.locks import LockBusyError, exclusive_lock
from mirror.ops.logs import run_context
from mirror.ops.metrics import SYNC_BYTES, SYNC_DURATION, SYNC_SKIPPED
from mirror.ops.notify import Notifier, cycle_notifications
from mirror.scheduler.jobstore import CatalogJobStore, cron_fields
from mirror.scheduler.leader import LeaseBusyError, LeaseStore, hold_lease
from mirror.scheduler.reload import WhitelistWatcher

logger = logging.getLogger(__name__)

PUBLISH_LEASE = "publish"
WAIT_POLL_SECONDS = 1.0

T = TypeVar("T")


def sync_lease(upstream: str) -> str:
    return f"sync:{upstream}"


def job_id(upstream: str) -> str:
    return f"sync:{upstream}"


@dataclass
class CycleResult:
    """Outcome of one cycle of one upstream; a `skipped` cycle did no work."""

    upstream: str
    trigger: str
    skipped: bool = False
    reason: str | None = None
    sync: Any = None
    validation: Any = None
    publish: Any = None

    @property
    def status(self) -> RunStatus | None:
        return self.sync.status if self.sync is not None else None


class CycleRunner:
    """Run sync cycles of single upstreams under their leases."""

    def __init__(
        self,
        context: MirrorContext,
        whitelist: WhitelistWatcher,
        leases: LeaseStore,
        notifier: Notifier,
        settings: SchedulerConfig,
    ):
        self.context = context
        self.whitelist = whitelist
        self.leases = leases
        self.notifier = notifier
        self.settings = settings
        self.active: set[asyncio.Task] = set()

    async def run_scheduled(self, upstream: str) -> None:
        """Entry point of the scheduled job; results are in the catalog, the logs and the metrics."""
        await self.run_upstream(upstream, trigger="schedule")

    async def run_upstream(self, upstream: str, *, trigger: str = "manual") -> CycleResult:
        if upstream not in self.context.config.upstreams:
            raise ConfigError(f"unknown upstream {upstream!r}; configured: {', '.join(self.context.config.upstreams)}")

        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            with run_context(job=sync_lease(upstream)):
                return await self._run_leased(upstream, trigger)
        finally:
            if task is not None:
                self.active.discard(task)

    async def _run_leased(self, upstream: str, trigger: str) -> CycleResult:
        await asyncio.to_thread(self.whitelist.check)
        entries = self.whitelist.entries
        if entries is None:
            logger.error("sync of upstream %s (%s) skipped: no valid whitelist has been loaded yet", upstream, trigger)
            return CycleResult(upstream, trigger, skipped=True, reason="no valid whitelist")

        try:
            async with hold_lease(self.leases, sync_lease(upstream), self.settings.lease_seconds):
                logger.info("sync of upstream %s started (%s)", upstream, trigger)
                return await self._cycle(upstream, trigger, entries)
        except LeaseBusyError as exc:
            SYNC_SKIPPED.labels(upstream).inc()
            logger.warning("sync of upstream %s (%s) skipped because a run is in progress: %s", upstream, trigger, exc)
            return CycleResult(upstream, trigger, skipped=True, reason=str(exc))

    async def _cycle(self, upstream: str, trigger: str, entries) -> CycleResult:
        from mirror.jobs.sync import SyncJob

        result = CycleResult(upstream, trigger)
        started = time.monotonic()
        try:
            try:
                result.sync = await SyncJob(self.context, upstreams=[upstream], entries=entries).run()
            except Exception:
                # The sync recorded its run as failed; one broken run must not stop the service.
                logger.exception("sync of upstream %s failed", upstream)
            await self._validate_and_publish(result)
        finally:
            status = result.status.value if result.status else RunStatus.FAILED.value
            SYNC_DURATION.labels(upstream, status).observe(time.monotonic() - started)
            if result.sync is not None:
                SYNC_BYTES.labels(upstream).inc(self._downloaded_bytes(upstream, result.sync.run_id))

        await self._notify(result)
        return result

    async def _validate_and_publish(self, result: CycleResult) -> None:
        from mirror.jobs.publishing import PublishJob
        from mirror.jobs.validation import ValidationJob

        async with self._publish_locks():
            try:
                result.validation = await run_blocking(ValidationJob(self.context).run)
                result.publish = await run_blocking(PublishJob(self.context).run)
            except Exception:
                logger.exception("validate or publish after the sync of upstream %s failed", result.upstream)

    @contextlib.asynccontextmanager
    async def _publish_locks(self):
        lease_logged = lock_logged = False
        while True:
            try:
                async with hold_lease(self.leases, PUBLISH_LEASE, self.settings.lease_seconds):
                    while True:
                        try:
                            with exclusive_lock(self.context.config.data_dir / "jobs.lock", "sync, validate or publish job"):
                                yield
                                return
                        except LockBusyError as exc:
                            if not lock_logged:
                                logger.info("waiting to validate and publish: %s", exc)
                                lock_logged = True
                        await asyncio.sleep(WAIT_POLL_SECONDS)
            except LeaseBusyError as exc:
                if not lease_logged:
                    logger.info("waiting to validate and publish: %s", exc)
                    lease_logged = True
            await asyncio.sleep(WAIT_POLL_SECONDS)

    def _downloaded_bytes(self, upstream: str, run_id: int) -> int:
        from mirror.catalog.models import SyncRun

        with self.context.catalog.session() as session:
            run = session.get(SyncRun, run_id)
            if run is None or run.finished_at is None:
                return 0
            total = session.scalar(
                select(func.coalesce(func.sum(Artifact.size), 0)).where(
                    Artifact.upstream == upstream,
                    Artifact.downloaded_at >= run.started_at,
                    Artifact.downloaded_at <= run.finished_at,
                )
            )
        return int(total or 0)

    async def _notify(self, result: CycleResult) -> None:
        if not self.notifier.enabled:
            return
        waiting = result.validation.held if result.validation is not None else 0
        for notification in cycle_notifications(result.upstream, result.sync, result.validation, waiting):
            await self.notifier.send(notification)


async def run_blocking(function: Callable[[], T]) -> T:
    """Run `function` in a thread; on cancellation, wait for it to end before re-raising."""
    task = asyncio.ensure_future(asyncio.to_thread(function))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        logger.warning("stop requested; waiting for the running validate or publish step to end")
        with contextlib.suppress(Exception):
            await task
        raise


# APScheduler


def build_scheduler(context: MirrorContext, runner: CycleRunner, settings: SchedulerConfig) -> AsyncIOScheduler:
    """Create a scheduler whose jobs live in the catalog and call `runner.run_scheduled`."""
    return AsyncIOScheduler(
        jobstores={"default": CatalogJobStore(context.catalog, runner.run_scheduled)},
        job_defaults={
            "coalesce": settings.coalesce,
            "misfire_grace_time": settings.misfire_grace_seconds,
            "max_instances": 1,
        },
        timezone=settings.timezone,
    )


def upstream_trigger(cron: str, timezone: str, jitter: int) -> CronTrigger:
    minute, hour, day, month, day_of_week = cron.split()
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week,
        timezone=timezone, jitter=jitter or None,
    )


def schedule_upstreams(scheduler: AsyncIOScheduler, runner: CycleRunner, upstreams: list[str], settings: SchedulerConfig) -> dict[str, str]:
    """Make the stored jobs match the config; return upstream -> crontab of the scheduled ones.

    A stored job whose schedule did not change is kept with its next run
    time, so a run missed while the service was down still starts within
    the misfire grace time. Call this on a started (possibly paused) scheduler.
    """
    wanted = {}
    for upstream in upstreams:
        schedule = settings.schedule_for(upstream)
        if schedule is not None:
            wanted[job_id(upstream)] = (upstream, *schedule)

    for job in scheduler.get_jobs():
        if job.id not in wanted:
            logger.info("scheduled job %s removed: its upstream is no longer scheduled", job.id)
            job.remove()

    scheduled = {}
    for identifier, (upstream, cron, jitter) in wanted.items():
        trigger = upstream_trigger(cron, settings.timezone, jitter)
        existing = scheduler.get_job(identifier)
        if existing is None or not _same_schedule(existing, trigger, settings):
            scheduler.add_job(
                runner.run_scheduled, trigger, args=[upstream], id=identifier, name=f"sync {upstream}",
                replace_existing=True,
            )
            logger.info("upstream %s scheduled: cron '%s' (%s), jitter %d s", upstream, cron, settings.timezone, jitter)
        scheduled[upstream] = cron
    return scheduled


def _same_schedule(job, trigger: CronTrigger, settings: SchedulerConfig) -> bool:
    return (
        cron_fields(job.trigger) == cron_fields(trigger)
        and str(job.trigger.timezone) == str(trigger.timezone)
        and job.trigger.jitter == trigger.jitter
        and job.misfire_grace_time == settings.misfire_grace_seconds
        and job.coalesce == settings.coalesce
    )
