"""`mirror service`: the HTTP server and the scheduler in one long-running process.

The service serves the channels (with `/metrics`, `/readyz` and the sync
trigger route), runs each upstream's sync cycle on its cron schedule,
polls the whitelist file, and on stop cancels running cycles so their runs
are recorded as interrupted. Several replicas may run against one catalog
database: leases keep each upstream's sync and the publish step single.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mirror.config.operations import check_scheduled_upstreams, notification_settings, scheduler_settings
from mirror.config.schema import MirrorConfig
from mirror.errors import ConfigError
from mirror.jobs.context import MirrorContext
from mirror.jobs.locks import LockBusyError, exclusive_lock
from mirror.jobs.runs import close_abandoned_runs
from mirror.ops.notify import Notifier
from mirror.scheduler.jobs import CycleRunner, build_scheduler, schedule_upstreams, sync_lease
from mirror.scheduler.leader import LeaseStore
from mirror.scheduler.reload import WhitelistWatcher
from mirror.server.app import create_app, start_server
from mirror.server.ops import SYNC_TRIGGER_KEY

logger = logging.getLogger(__name__)


@dataclass
class MirrorService:
    """The parts of a running service; build it with `start_service`, end it with `stop`."""

    context: MirrorContext
    runner: CycleRunner
    scheduler: AsyncIOScheduler
    scheduled: dict[str, str]
    web_runner: web.AppRunner | None = None
    base_url: str = ""
    background: set[asyncio.Task] = field(default_factory=set)

    async def trigger(self, upstream: str) -> str:
        """Start a cycle of `upstream` in the background; return 'busy' when its lease is held."""
        holder = await asyncio.to_thread(self.runner.leases.holder_of, sync_lease(upstream))
        if holder is not None:
            logger.warning("manual sync of upstream %s skipped: lease held by %s", upstream, holder[0])
            return "busy"
        self._spawn(self.runner.run_upstream(upstream, trigger="manual"), f"sync {upstream}")
        return "started"

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def stop(self) -> None:
        """Stop scheduling, cancel running cycles (recorded as interrupted) and close the server."""
        with contextlib.suppress(Exception):
            self.scheduler.shutdown(wait=False)
        running = list(self.background | self.runner.active)
        for task in running:
            task.cancel()
        if running:
            logger.info("stopping: waiting for %d running job(s) to record their end", len(running))
            await asyncio.gather(*running, return_exceptions=True)
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        self.context.close()
        logger.info("service stopped")


async def start_service(config: MirrorConfig) -> MirrorService:
    """Open the catalog, load the whitelist, start the scheduler and the HTTP server."""
    problems = check_scheduled_upstreams(config)
    if problems:
        raise ConfigError("\n".join(problems))

    settings = scheduler_settings(config)
    context = MirrorContext.open(config)
    scheduler = None
    try:
        leases = LeaseStore(context.catalog)
        watcher = WhitelistWatcher(config, context.catalog)
        await asyncio.to_thread(watcher.start)
        _close_abandoned_runs(context, leases)

        runner = CycleRunner(context, watcher, leases, Notifier(notification_settings(config)), settings)
        scheduler = build_scheduler(context, runner, settings)
        scheduler.start(paused=True)
        scheduled = schedule_upstreams(scheduler, runner, list(config.upstreams), settings) if settings.enabled else {}
        if settings.enabled:
            scheduler.resume()
        else:
            logger.info("scheduler.enabled is false: syncs run only when triggered")

        service = MirrorService(context, runner, scheduler, scheduled)
        service.web_runner, service.base_url = await _start_http(config, service)
    except BaseException:
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        context.close()
        raise

    service._spawn(_poll_whitelist(watcher, settings.whitelist_poll_seconds), "whitelist poll")
    logger.info("service started at %s; scheduled upstreams: %s", service.base_url, ", ".join(scheduled) or "none")
    return service


async def serve_forever(config: MirrorConfig) -> None:
    """Run the service until the task is cancelled or the process gets SIGTERM or SIGINT."""
    service = await start_service(config)
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()


def _close_abandoned_runs(context: MirrorContext, leases: LeaseStore) -> None:
    # Runs left 'running' are closed only when no process can still run them. That needs no live
    # lease (no replica's cycle) and a free file lock (no CLI job on this data folder).
    if leases.live_leases():
        return
    try:
        with exclusive_lock(context.config.data_dir / "jobs.lock", "sync, validate or publish job"):
            closed = close_abandoned_runs(context.catalog)
    except LockBusyError:
        return
    if closed:
        logger.warning("marked %d run(s) left by an ended process as interrupted", closed)


async def _start_http(config: MirrorConfig, service: MirrorService) -> tuple[web.AppRunner, str]:
    app = create_app(config)
    app[SYNC_TRIGGER_KEY] = service.trigger
    return await start_server(config, app)


async def _poll_whitelist(watcher: WhitelistWatcher, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(watcher.check)
        except Exception:
            # The poll loop must outlive a database hiccup; the next poll tries again.
            logger.exception("whitelist check failed")
