"""`mirror status`: upstreams, recent runs, channel contents and what keeps files out."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from mirror.catalog.models import Artifact, ArtifactState, ChannelMembership, MembershipState, RepodataState, SyncRun
from mirror.jobs.context import MirrorContext
from mirror.upstream.redact import redact_url

RECENT_RUNS = 8
LISTED_PROBLEMS = 20


def print_status(context: MirrorContext, console: Console) -> None:
    with context.catalog.session() as session:
        console.print(_upstreams(context, session))
        console.print(_runs(session))
        console.print(_channels(context, session))
        _problems(session, console)


def _upstreams(context: MirrorContext, session) -> Table:
    table = Table(title="Upstreams", title_justify="left")
    for column in ("upstream", "subdir", "repodata fetched", "from"):
        table.add_column(column)
    states = {(s.upstream, s.subdir): s for s in session.scalars(select(RepodataState))}
    for name, upstream in context.config.upstreams.items():
        for subdir in upstream.subdirs:
            state = states.get((name, subdir))
            fetched = state.fetched_at.strftime("%Y-%m-%d %H:%M:%S") if state else "never"
            table.add_row(name, subdir, fetched, redact_url(state.url) if state else redact_url(upstream.url))
    return table


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
