"""The `mirror` command: sync, validate, publish, run, serve, status and demo."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from mirror.cli.logs import configure_logging
from mirror.cli.progress import progress_bars
from mirror.config.load import load_config
from mirror.errors import ConfigError, MirrorError
from mirror.jobs.locks import LockBusyError, exclusive_lock

logger = logging.getLogger(__name__)

EXIT_PARTIAL = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

console = Console(stderr=True, soft_wrap=True)


class MirrorCli(click.Group):
    """Turn the mirror's own errors into one clear line and an exit code, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            console.print(f"[red]configuration error[/red]\n{exc}", highlight=False)
            sys.exit(EXIT_CONFIG)
        except LockBusyError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(EXIT_PARTIAL)
        except MirrorError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(EXIT_PARTIAL)
        except KeyboardInterrupt:
            console.print("interrupted; finished work is kept and the next run resumes from it")
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=MirrorCli)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("MIRROR_CONFIG", "config/mirror.yaml"), show_default="config/mirror.yaml or $MIRROR_CONFIG",
    help="Path of mirror.yaml.",
)
@click.option("-v", "--verbose", count=True, help="More log output; repeat for library debug logs.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option(
    "--log-format", type=click.Choice(["plain", "json"]), default=None,
    help="Log line format; default $MIRROR_LOG_FORMAT, else plain.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: int, quiet: bool, log_format: str | None) -> None:
    """Internal conda mirror: sync whitelisted packages, validate them, publish conda channels."""
    configure_logging(-1 if quiet else verbose, log_format)
    ctx.meta["verbosity"] = -1 if quiet else verbose
    _terminate_as_interrupt()
    ctx.obj = config_path


def _terminate_as_interrupt() -> None:
    # SIGTERM (systemd, Kubernetes) ends a run the same way as Ctrl-C: recorded as interrupted.
    def handler(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def _job_context(ctx: click.Context) -> Iterator:
    """Open the catalog and store while holding the data folder's job lock.

    Runs that a killed process left 'running' are closed as interrupted
    here. That is safe only when no other process is working: the lock
    rules out other CLI jobs, and a live lease means a service is syncing.
    """
    from mirror.jobs.context import MirrorContext
    from mirror.jobs.runs import close_abandoned_runs
    from mirror.scheduler.leader import LeaseStore

    config = load_config(ctx.obj)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(config.data_dir / "jobs.lock", "sync, validate or publish job"):
        context = MirrorContext.open(config)
        try:
            busy = LeaseStore(context.catalog).live_leases()
            abandoned = 0 if busy else close_abandoned_runs(context.catalog)
            if abandoned:
                logger.warning("marked %d run(s) left by an ended process as interrupted", abandoned)
            yield context
        finally:
            context.close()


@cli.command()
@click.option("--upstream", "upstreams", multiple=True, help="Sync only this upstream; repeat for several.")
@click.pass_context
def sync(ctx: click.Context, upstreams: tuple[str, ...]) -> None:
    """Fetch upstream repodata, select whitelisted files, download and verify them."""
    with _job_context(ctx) as context:
        unknown = sorted(set(upstreams) - set(context.config.upstreams))
        if unknown:
            raise ConfigError(
                f"unknown upstream {', '.join(unknown)}; configured: {', '.join(context.config.upstreams)}"
            )
        report = _sync(context, upstreams or None)
    _exit_for(report.status)


@cli.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Run the validation checks on downloaded files and apply each channel's policy."""
    with _job_context(ctx) as context:
        _validate(context)


@cli.command()
@click.pass_context
def publish(ctx: click.Context) -> None:
    """Write the channel indexes from the approved files."""
    with _job_context(ctx) as context:
        _publish(context)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run one full cycle: sync, validate, publish."""
    with _job_context(ctx) as context:
        status = run_cycle(context)
    _exit_for(status)


@cli.command()
@click.option("--host", default=None, help="Address to bind; overrides server.host.")
@click.option("--port", type=int, default=None, help="TCP port; overrides server.port.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the published channels over HTTP."""
    from mirror.server.app import serve as serve_channels

    config = load_config(ctx.obj)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        config = config.model_copy(update={"server": config.server.model_copy(update=overrides)})
    asyncio.run(serve_channels(config))


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Summarise upstreams, recent runs and channel contents."""
    from mirror.cli.status import print_status

    from mirror.jobs.context import MirrorContext

    context = MirrorContext.open(load_config(ctx.obj))
    try:
        # Wide enough for the tables when the output goes to a file or a pipe.
        print_status(context, Console(width=None if sys.stdout.isatty() else 160))
    finally:
        context.close()


def run_cycle(context) -> object:
    """Sync, validate and publish once; return the sync status (publish runs even after a partial sync)."""
    report = _sync(context)
    _validate(context)
    _publish(context)
    return report.status


def _sync(context, upstreams=None):
    from mirror.jobs.sync import SyncJob

    with progress_bars(console) as progress:
        report = asyncio.run(SyncJob(context, upstreams=upstreams, progress=progress).run())
    console.print(
        f"sync: {report.selected} selected, {report.discovered} new, {report.downloaded} downloaded, "
        f"{report.retired} retired, {len(report.failed)} failed ({report.status.value})", highlight=False,
    )
    for line in report.failed + report.errors:
        console.print(f"  [red]error[/red] {line}", highlight=False)
    for line in report.unresolved:
        console.print(f"  [yellow]unresolved[/yellow] {line}", highlight=False)
    for line in report.warnings:
        console.print(f"  [yellow]warning[/yellow] {line}", highlight=False)
    return report


def _validate(context):
    from mirror.jobs.validation import ValidationJob

    with progress_bars(console) as progress:
        report = ValidationJob(context, progress=progress).run()
    console.print(
        f"validate: {report.validated} checked, {report.approved} approved, {report.held} held for review, "
        f"{len(report.failed)} failed", highlight=False,
    )
    for line in report.failed:
        console.print(f"  [red]failed[/red] {line}", highlight=False)
    return report


def _publish(context):
    from mirror.jobs.publishing import PublishJob

    report = PublishJob(context).run()
    summary = ", ".join(f"{channel}: {count} files" for channel, count in report.channels.items())
    console.print(f"publish: {summary}", highlight=False)
    for line in report.warnings:
        console.print(f"  [yellow]warning[/yellow] {line}", highlight=False)
    return report


def _exit_for(status) -> None:
    from mirror.catalog.models import RunStatus

    if status != RunStatus.SUCCESS:
        sys.exit(EXIT_PARTIAL)


def _register_command_groups() -> None:
    # Imported here because these modules import helpers from this one.
    from mirror.cli.advisories import advisories
    from mirror.cli.demo import demo
    from mirror.cli.review import review
    from mirror.cli.tokens import tokens
    from mirror.cli.users import users

    from mirror.cli.ops import COMMANDS

    for group in (advisories, demo, review, tokens, users, *COMMANDS):
        cli.add_command(group)


_register_command_groups()


def main() -> None:
    cli(prog_name="mirror")

