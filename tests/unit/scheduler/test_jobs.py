"""APScheduler set-up: jobs stored as JSON in the catalog, reconciled with the config, and fired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mirror.config.operations import SchedulerConfig
from mirror.scheduler.jobs import build_scheduler, schedule_upstreams
from mirror.scheduler.models import ScheduledJob


class RecordingRunner:
    """Stands in for CycleRunner: records each scheduled call."""

    def __init__(self):
        self.calls: list[str] = []
        self.fired = asyncio.Event()

    async def run_scheduled(self, upstream: str) -> None:
        self.calls.append(upstream)
        self.fired.set()


class FakeContext:
    def __init__(self, catalog):
        self.catalog = catalog


SETTINGS = SchedulerConfig(cron="0 3 * * *", jitter_seconds=0, misfire_grace_seconds=3600)


def started(catalog, runner, settings=SETTINGS):
    scheduler = build_scheduler(FakeContext(catalog), runner, settings)
    scheduler.start(paused=True)
    return scheduler


async def test_schedule_stores_json_job(catalog):
    runner = RecordingRunner()
    scheduler = started(catalog, runner)
    scheduled = schedule_upstreams(scheduler, runner, ["up", "other"], SETTINGS)
    scheduler.shutdown(wait=False)

    assert scheduled == {"up": "0 3 * * *", "other": "0 3 * * *"}
    with catalog.session() as session:
        rows = {row.id: row for row in session.scalars(select(ScheduledJob))}
    assert set(rows) == {"sync:up", "sync:other"}
    assert rows["sync:up"].state["cron"] == {"month": "*", "day": "*", "day_of_week": "*", "hour": "3", "minute": "0"}
    assert rows["sync:up"].state["args"] == ["up"]
    next_run = datetime.fromtimestamp(rows["sync:up"].next_run_time, UTC)
    assert (next_run.hour, next_run.minute) == (3, 0)


async def test_scheduled_job_fires(catalog):
    runner = RecordingRunner()
    scheduler = started(catalog, runner)
    schedule_upstreams(scheduler, runner, ["up"], SETTINGS)
    scheduler.modify_job("sync:up", next_run_time=datetime.now(UTC))
    scheduler.resume()
    try:
        await asyncio.wait_for(runner.fired.wait(), 30)
    finally:
        scheduler.shutdown(wait=False)
    assert runner.calls == ["up"]


async def test_missed_run_fires_after_restart(catalog):
    first = RecordingRunner()
    scheduler = started(catalog, first)
    schedule_upstreams(scheduler, first, ["up"], SETTINGS)
    scheduler.modify_job("sync:up", next_run_time=datetime.now(UTC) - timedelta(minutes=10))
    scheduler.shutdown(wait=False)

    # A new service finds the stored job unchanged and keeps its missed run time.
    second = RecordingRunner()
    restarted = started(catalog, second)
    schedule_upstreams(restarted, second, ["up"], SETTINGS)
    restarted.resume()
    try:
        await asyncio.wait_for(second.fired.wait(), 30)
    finally:
        restarted.shutdown(wait=False)
    assert second.calls == ["up"]
    assert first.calls == []


async def test_changed_schedule_replaces_job(catalog):
    runner = RecordingRunner()
    scheduler = started(catalog, runner)
    schedule_upstreams(scheduler, runner, ["up", "gone"], SETTINGS)
    hourly = SETTINGS.model_copy(update={"cron": "15 * * * *"})
    schedule_upstreams(scheduler, runner, ["up"], hourly)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    scheduler.shutdown(wait=False)

    assert set(jobs) == {"sync:up"}
    assert jobs["sync:up"].next_run_time.minute == 15


async def test_unscheduled_upstream_has_no_job(catalog):
    runner = RecordingRunner()
    settings = SchedulerConfig(cron=None, upstreams={"up": {"cron": "*/30 * * * *", "jitter_seconds": 60}})
    scheduler = started(catalog, runner, settings)
    scheduled = schedule_upstreams(scheduler, runner, ["up", "manual"], settings)
    job = scheduler.get_job("sync:up")
    scheduler.shutdown(wait=False)
    assert scheduled == {"up": "*/30 * * * *"}
    assert job.trigger.jitter == 60
