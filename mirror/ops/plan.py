"""`mirror plan`: what a whitelist would add to and retire from the channels, before a sync applies it.

The plan runs the same selection as a sync, against the upstream repodata
cached by the last sync (`data_dir/upstream-cache/<upstream>/<subdir>/`),
and compares the result with the memberships that are not retired. It
downloads nothing and changes nothing. As in a sync, an upstream that no
whitelist entry names is left as it is, and an upstream whose cached
repodata is missing is reported and left out of the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from mirror.catalog.models import Artifact, ChannelMembership, MembershipState
from mirror.config.schema import WhitelistEntry
from mirror.jobs.context import MirrorContext
from mirror.selection import SubdirIndex, select_entry

logger = logging.getLogger(__name__)

ADD = "add"
RETIRE = "retire"


@dataclass(frozen=True)
class PlanRow:
    action: str
    channel: str
    upstream: str
    subdir: str
    filename: str
    size: int | None


@dataclass
class Plan:
    rows: list[PlanRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def total(self, action: str) -> tuple[int, int]:
        """Return the number of rows with `action` and their total size in bytes."""
        rows = [row for row in self.rows if row.action == action]
        return len(rows), sum(row.size or 0 for row in rows)


def plan_subdirs(entries: list[WhitelistEntry], upstream_subdirs: list[str]) -> list[str]:
    """Return the subdirs a sync reads for these entries (noarch always, when the upstream has it)."""
    subdirs = sorted({subdir for entry in entries for subdir in (entry.subdirs or upstream_subdirs)})
    if "noarch" in upstream_subdirs and "noarch" not in subdirs:
        subdirs.append("noarch")
    return subdirs


def plan_whitelist(context: MirrorContext, entries: list[WhitelistEntry]) -> Plan:
    plan = Plan()
    for name, upstream in context.config.upstreams.items():
        own = [entry for entry in entries if entry.upstream == name]
        if not own:
            continue
        chosen = _select(context, name, upstream.subdirs, own, plan)
        if chosen is None:
            continue
        current = _current(context, name)
        _compare(name, chosen, current, plan)
    plan.rows.sort(key=lambda row: (row.channel, row.subdir, row.filename, row.action))
    return plan


def _select(context, upstream: str, upstream_subdirs: list[str], entries: list[WhitelistEntry], plan: Plan):
    """Return channel -> {(subdir, filename): size} chosen by `entries`, or None without a cache."""
    subdirs = plan_subdirs(entries, upstream_subdirs)
    paths = {subdir: context.config.cache_dir / upstream / subdir / "repodata.json" for subdir in subdirs}
    missing = [subdir for subdir, path in paths.items() if not path.is_file()]
    if missing:
        plan.warnings.append(
            f"upstream {upstream}: no cached repodata for {', '.join(missing)}; "
            "run 'mirror plan --fetch' or 'mirror sync' first. This upstream is left out of the plan"
        )
        return None

    indexes = {subdir: SubdirIndex(upstream, subdir, path) for subdir, path in paths.items()}
    try:
        chosen: dict[str, dict[tuple[str, str], int | None]] = {}
        for entry in entries:
            entry_subdirs = [s for s in (entry.subdirs or upstream_subdirs) if s in indexes]
            selection = select_entry(entry, entry_subdirs, indexes)
            channel = chosen.setdefault(entry.channel, {})
            for key in selection.chosen:
                channel[key] = None
            plan.warnings.extend(
                f"whitelist spec {text!r} for channel {entry.channel} matches no upstream record"
                for text in selection.unmatched_specs
            )
        _fill_sizes(indexes, chosen)
        return chosen
    finally:
        for index in indexes.values():
            index.close()


def _fill_sizes(indexes: dict[str, SubdirIndex], chosen: dict[str, dict[tuple[str, str], int | None]]) -> None:
    wanted: dict[str, set[str]] = {}
    for files in chosen.values():
        for subdir, filename in files:
            wanted.setdefault(subdir, set()).add(filename)
    sizes = {}
    for subdir, filenames in wanted.items():
        for filename, record in indexes[subdir].raw_records(filenames).items():
            sizes[(subdir, filename)] = record.get("size")
    for files in chosen.values():
        for key in files:
            files[key] = sizes.get(key)


def _current(context: MirrorContext, upstream: str) -> dict[str, dict[tuple[str, str], int | None]]:
    current: dict[str, dict[tuple[str, str], int | None]] = {}
    with context.catalog.session() as session:
        rows = session.execute(
            select(ChannelMembership.channel, Artifact.subdir, Artifact.filename, Artifact.size)
            .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
            .where(Artifact.upstream == upstream, ChannelMembership.state != MembershipState.RETIRED)
        ).all()
    for channel, subdir, filename, size in rows:
        current.setdefault(channel, {})[(subdir, filename)] = size
    return current


def _compare(upstream: str, chosen, current, plan: Plan) -> None:
    for channel in sorted(set(chosen) | set(current)):
        wanted = chosen.get(channel, {})
        present = current.get(channel, {})
        for (subdir, filename), size in wanted.items():
            if (subdir, filename) not in present:
                plan.rows.append(PlanRow(ADD, channel, upstream, subdir, filename, size))
        for (subdir, filename), size in present.items():
            if (subdir, filename) not in wanted:
                plan.rows.append(PlanRow(RETIRE, channel, upstream, subdir, filename, size))


async def fetch_repodata(context: MirrorContext, entries: list[WhitelistEntry]) -> list[str]:
    """Refresh the cached repodata of every upstream the entries name; return error messages."""
    from mirror.errors import MirrorError
    from mirror.jobs.sync import SyncJob
    from mirror.upstream.client import UpstreamClient

    errors = []
    sync = SyncJob(context, entries=entries)
    for name, upstream in context.config.upstreams.items():
        own = [entry for entry in entries if entry.upstream == name]
        if not own:
            continue
        try:
            async with UpstreamClient(name, upstream, tmp_dir=context.config.tmp_dir) as client:
                for subdir in plan_subdirs(own, upstream.subdirs):
                    await sync.fetch_repodata(client, name, subdir)
        except MirrorError as exc:
            errors.append(f"upstream {name}: repodata could not be fetched: {exc}")
    return errors
