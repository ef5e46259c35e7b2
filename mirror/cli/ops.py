"""Operations commands: `mirror plan`, `gc`, `verify`, `trigger` and `service`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mirror.cli.main import EXIT_PARTIAL, _job_context, console
from mirror.config.load import load_config, load_whitelist

logger = logging.getLogger(__name__)

# sysexits.h EX_TEMPFAIL: another run holds the lease, so try again later.
EXIT_SKIPPED = 75


@click.command()
@click.option(
    "--whitelist", "whitelist_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Whitelist file to plan; defaults to the one mirror.yaml names.",
)
@click.option("--fetch", is_flag=True, help="Refresh the cached upstream repodata before planning.")
@click.pass_context
def plan(ctx: click.Context, whitelist_path: Path | None, fetch: bool) -> None:
    """Show what a whitelist would add and retire, with sizes, without changing anything."""
    from mirror.jobs.context import MirrorContext
    from mirror.ops.plan import fetch_repodata, plan_whitelist

    config = load_config(ctx.obj)
    entries = load_whitelist(config, whitelist_path)
    if fetch:
        with _job_context(ctx) as context:
            for error in asyncio.run(fetch_repodata(context, entries)):
                console.print(f"[red]error[/red] {error}", highlight=False)

    context = MirrorContext.open(config)
    try:
        result = plan_whitelist(context, entries)
    finally:
        context.close()
    _print_plan(result, _stdout())


def _print_plan(result, out: Console) -> None:
    from mirror.ops.plan import ADD, RETIRE

    table = Table(title="Plan", title_justify="left")
    for column, justify in (("channel", "left"), ("file", "left"), ("size", "right"), ("action", "left")):
        table.add_column(column, justify=justify)
    for row in result.rows:
        table.add_row(row.channel, f"{row.upstream}/{row.subdir}/{row.filename}", human_bytes(row.size), row.action)
    out.print(table)

    added, added_bytes = result.total(ADD)
    retired, retired_bytes = result.total(RETIRE)
    out.print(f"to add: {added} files ({human_bytes(added_bytes)}); to retire: {retired} files ({human_bytes(retired_bytes)})", highlight=False)
    for warning in result.warnings:
        console.print(f"  [yellow]warning[/yellow] {warning}", highlight=False)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--older-than-days", type=click.FloatRange(min=0), default=None,
    help="Minimum days a blob has been unreferenced; overrides retention.unreferenced_blob_days.",
)
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, older_than_days: float | None) -> None:
    """Remove stored blobs that nothing has referenced for the retention period."""
    from mirror.config.operations import retention_settings
    from mirror.ops.gc import collect_garbage

    with _job_context(ctx) as context:
        days = older_than_days if older_than_days is not None else retention_settings(context.config).unreferenced_blob_days
        report = collect_garbage(context, min_age=timedelta(days=days), dry_run=dry_run)

    verb = "would remove" if dry_run else "removed"
    _stdout().print(
        f"gc: {report.blobs} blobs, {report.referenced} referenced; {verb} {len(report.removable)} "
        f"({human_bytes(report.removable_bytes)}); {len(report.too_young)} unreferenced for less than {days:g} days",
        highlight=False,
    )
    for blob in report.removable:
        _stdout().print(f"  {blob.sha256} {human_bytes(blob.size)} unreferenced since {blob.unreferenced_since:%Y-%m-%d %H:%M}", highlight=False)


@click.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Rehash every published package file against the catalog and the store; exit 1 on a difference."""
    from mirror.jobs.context import MirrorContext
    from mirror.ops.verify import verify_published

    context = MirrorContext.open(load_config(ctx.obj))
    try:
        report = verify_published(context)
    finally:
        context.close()

    out = _stdout()
    for difference in report.differences:
        out.print(f"{difference.channel}/{difference.subdir}/{difference.filename}: {difference.problem}", highlight=False)
    out.print(f"verify: {report.checked} files checked, {len(report.differences)} differences", highlight=False)
    if report.differences:
        sys.exit(EXIT_PARTIAL)


@click.command()
@click.argument("upstream")
@click.pass_context
def trigger(ctx: click.Context, upstream: str) -> None:
    """Run one sync cycle (sync, validate, publish) of UPSTREAM now, unless a run of it is in progress."""
    from mirror.catalog.models import RunStatus

    result = asyncio.run(_trigger(load_config(ctx.obj), upstream))
    if result.skipped:
        console.print(f"sync of {upstream} skipped: {result.reason}", highlight=False)
        sys.exit(EXIT_SKIPPED)
    status = result.status.value if result.status else "failed"
    console.print(f"sync of {upstream}: {status}", highlight=False)
    if result.status != RunStatus.SUCCESS:
        sys.exit(EXIT_PARTIAL)


async def _trigger(config, upstream: str):
    from mirror.config.operations import notification_settings, scheduler_settings
    from mirror.errors import ConfigError
    from mirror.jobs.context import MirrorContext
    from mirror.ops.notify import Notifier
    from mirror.scheduler.jobs import CycleRunner
    from mirror.scheduler.leader import LeaseStore
    from mirror.scheduler.reload import WhitelistWatcher

    if upstream not in config.upstreams:
        raise ConfigError(f"unknown upstream {upstream!r}; configured: {', '.join(config.upstreams)}")
    context = MirrorContext.open(config)
    try:
        watcher = WhitelistWatcher(config, context.catalog)
        await asyncio.to_thread(watcher.start)
        runner = CycleRunner(
            context, watcher, LeaseStore(context.catalog), Notifier(notification_settings(config)), scheduler_settings(config)
        )
        return await runner.run_upstream(upstream, trigger="cli")
    finally:
        context.close()


@click.command()
@click.option("--host", default=None, help="Address to bind; overrides server.host.")
@click.option("--port", type=int, default=None, help="TCP port; overrides server.port.")
@click.pass_context
def service(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the channels and run the scheduled syncs until stopped (SIGTERM or Ctrl-C)."""
    from mirror.cli.logs import LOG_FORMAT_ENV, configure_logging
    from mirror.config.operations import logging_settings
    from mirror.scheduler.service import serve_forever

    config = load_config(ctx.obj)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        config = config.model_copy(update={"server": config.server.model_copy(update=overrides)})
    if LOG_FORMAT_ENV not in os.environ:
        configure_logging(ctx.meta.get("verbosity", 0), logging_settings(config).format)
    asyncio.run(serve_forever(config))


def human_bytes(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _stdout() -> Console:
    # Wide enough for the tables when the output goes to a file or a pipe.
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)


COMMANDS = (plan, gc, verify, trigger, service)
