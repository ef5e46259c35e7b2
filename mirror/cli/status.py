"""`mirror status`: upstreams, recent runs, channel contents and what keeps files out."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from mirror.catalog.models import Artifact, ArtifactState, ChannelMembership, MembershipState, RepodataState, SyncRun
from mirror.config.operations import scheduler_settings
from mirror.jobs.context import MirrorContext
from mirror.scheduler.jobs import job_id, sync_lease
from mirror.scheduler.leader import LeaseStore
from mirror.scheduler.models import ScheduledJob
from mirror.scheduler.reload import whitelist_status
from mirror.upstream.redact import redact_url

RECENT_RUNS = 8
LISTED_PROBLEMS = 20


def print_status(context: MirrorContext, console: Console) -> None:
    with context.catalog.session() as session:
        console.print(_upstreams(context, session))
        console.print(_runs(session))
        console.print(_queues(session))
        console.print(_channels(context, session))
        _whitelist(context, console)
        _problems(session, console)


def _upstreams(context: MirrorContext, session) -> Table:
    table = Table(title="Upstreams", title_justify="left")
    for column in ("upstream", "subdir", "repodata fetched", "from", "schedule", "next run", "running"):
        table.add_column(column)
    states = {(s.upstream, s.subdir): s for s in session.scalars(select(RepodataState))}
    next_runs = {job.id: job.next_run_time for job in session.scalars(select(ScheduledJob))}
    leases = {name: holder for name, holder, _ in LeaseStore(context.catalog).live_leases()}
    settings = scheduler_settings(context.config)
    for name, upstream in context.config.upstreams.items():
        schedule = settings.schedule_for(name)
        next_run = next_runs.get(job_id(name))
        cells = [
            f"{schedule[0]} ({settings.timezone})" if schedule else "manual only",
            _time(next_run) if next_run is not None else "-",
            leases.get(sync_lease(name), "-"),
        ]
        for position, subdir in enumerate(upstream.subdirs):
            state = states.get((name, subdir))
            fetched = state.fetched_at.strftime("%Y-%m-%d %H:%M:%S") if state else "never"
            # Schedule columns belong to the upstream, so only its first row shows them.
            shown = cells if position == 0 else ["", "", ""]
            table.add_row(name, subdir, fetched, redact_url(state.url) if state else redact_url(upstream.url), *shown)
    return table


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _queues(session) -> Table:
    """Count the work waiting for the next run of each step."""
    table = Table(title="Queues", title_justify="left")
    table.add_column("waiting for")
    table.add_column("files", justify="right")
    live = Artifact.memberships.any(ChannelMembership.state != MembershipState.RETIRED)
    downloads = session.scalar(
        select(func.count()).select_from(Artifact).where(
            live, Artifact.state.in_([ArtifactState.DISCOVERED, ArtifactState.DOWNLOAD_FAILED])
        )
    )
    validation = session.scalar(
        select(func.count()).select_from(ChannelMembership).where(ChannelMembership.state == MembershipState.PENDING)
    )
    review = session.scalar(
        select(func.count()).select_from(ChannelMembership).where(ChannelMembership.state == MembershipState.PASSED)
    )
    unpublished = session.scalar(
        select(func.count()).select_from(ChannelMembership).where(
            ChannelMembership.state == MembershipState.APPROVED, ChannelMembership.published_at.is_(None)
        )
    )
    for label, count in (("download", downloads), ("validation", validation), ("review", review), ("publish", unpublished)):
        table.add_row(label, str(count or 0))
    return table


def _whitelist(context: MirrorContext, console: Console) -> None:
    state = whitelist_status(context.catalog)
    if state is None:
        return
    loaded = state.loaded_at.strftime("%Y-%m-%d %H:%M:%S") if state.loaded_at else "never"
    console.print(f"Whitelist {state.path}: {state.entries} entries in force, loaded {loaded}", highlight=False)
    if state.error:
        console.print("[red]The whitelist file is invalid; the service keeps the last good one:[/red]")
        console.print(state.error, highlight=False, markup=False)


def _runs(session) -> Table:
    table = Table(title="Recent runs", title_justify="left")
    for column in ("id", "kind", "status", "started", "duration", "counts"):
        table.add_column(column)
    runs = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(RECENT_RUNS))
    for run in runs:
        duration = f"{(run.finished_at - run.started_at).total_seconds():.1f} s" if run.finished_at else "-"
        counts = ", ".join(f"{k}={_compact(v)}" for k, v in (run.counts or {}).items() if v)
        table.add_row(str(run.id), run.kind, run.status.value, run.started_at.strftime("%Y-%m-%d %H:%M:%S"), duration, counts)
    return table


def _compact(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def _channels(context: MirrorContext, session) -> Table:
    table = Table(title="Channels", title_justify="left")
    states = [state.value for state in MembershipState]
    table.add_column("channel")
    table.add_column("approval")
    for state in states:
        table.add_column(state, justify="right")
    table.add_column("published", justify="right")

    counts = dict(
        ((channel, state), count)
        for channel, state, count in session.execute(
            select(ChannelMembership.channel, ChannelMembership.state, func.count()).group_by(
                ChannelMembership.channel, ChannelMembership.state
            )
        )
    )
    published = dict(
        session.execute(
            select(ChannelMembership.channel, func.count())
            .filter(ChannelMembership.state == MembershipState.APPROVED, ChannelMembership.published_at.is_not(None))
            .group_by(ChannelMembership.channel)
        ).all()
    )
    for channel, settings in context.config.channels.items():
        row = [str(counts.get((channel, MembershipState(state)), 0)) for state in states]
        table.add_row(channel, settings.approval, *row, str(published.get(channel, 0)))
    return table


def _problems(session, console: Console) -> None:
    held = session.scalars(
        select(ChannelMembership)
        .filter(ChannelMembership.state.in_([MembershipState.FAILED, MembershipState.PASSED]))
        .order_by(ChannelMembership.updated_at.desc())
        .limit(LISTED_PROBLEMS)
    ).all()
    failed_downloads = session.scalars(
        select(Artifact).filter(Artifact.state == ArtifactState.DOWNLOAD_FAILED).limit(LISTED_PROBLEMS)
    ).all()
    if not held and not failed_downloads:
        console.print("Nothing is held back.")
        return

    console.print("[bold]Held back[/bold]")
    for membership in held:
        label = "failed" if membership.state == MembershipState.FAILED else "waiting for review"
        console.print(f"  {membership.channel}: {membership.artifact.key} ({label}): {membership.reason}", highlight=False)
    for artifact in failed_downloads:
        console.print(f"  download failed: {artifact.key}: {artifact.last_error}", highlight=False)
