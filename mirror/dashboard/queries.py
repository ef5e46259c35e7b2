"""Read queries of the review dashboard and API, paginated and served by indexes.

The queue filters use the catalog's indexes: `(channel, state)` on
memberships, then `name`, `upstream` and `first_seen` on artifacts, and
the `(artifact_id, check_name, ...)` unique index for a check filter.
A name filter is a prefix match written as a range, so SQLite can use
the name index (a `LIKE` would not, being case-insensitive there).

Every function takes an open SQLAlchemy session and returns plain
dicts and lists, which templates render and the API sends as JSON.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from mirror.catalog.models import (
    Artifact,
    AuditEvent,
    ChannelMembership,
    CheckOutcome,
    MembershipState,
    SyncRun,
    ValidationResult,
)
from mirror.config.schema import MirrorConfig

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE = 100_000
# The highest code point, so `name < prefix + MAX_CHAR` bounds a prefix range.
MAX_CHAR = "\U0010ffff"
NOT_PASSED = (CheckOutcome.WARN, CheckOutcome.FAIL, CheckOutcome.ERROR)
MAX_REASON_CHARS = 2000
AUDIT_EVENTS_ON_PACKAGE = 50


class QueryError(ValueError):
    """A filter value is invalid; the message names it and the accepted values."""


@dataclass(frozen=True)
class QueueFilter:
    """A filter over the memberships of one channel.

    `states` empty means every state. `check` keeps packages whose stored
    result of that check is not a pass. `name` is a prefix of the package
    name. `max_age_days` keeps files first seen within that many days,
    `min_age_days` those seen at least that long ago.
    """

    channel: str
    states: tuple[MembershipState, ...] = (MembershipState.PASSED,)
    check: str | None = None
    name: str | None = None
    upstream: str | None = None
    max_age_days: float | None = None
    min_age_days: float | None = None

    def as_params(self) -> dict[str, str]:
        """Return the filter as query parameters, for links to other pages of the same list."""
        params = {"state": ",".join(s.value for s in self.states) if self.states else "all"}
        for key in ("check", "name", "upstream", "max_age_days", "min_age_days"):
            value = getattr(self, key)
            if value not in (None, ""):
                params[key] = f"{value:g}" if isinstance(value, float) else str(value)
        return params


@dataclass
class Page:
    """One page of a listing: its rows, the total number of rows and the page numbers."""

    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int = PAGE_SIZE
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "page": self.page, "pages": self.pages,
                "page_size": self.page_size}


def parse_states(text: str | None) -> tuple[MembershipState, ...]:
    """Parse a comma-separated state list; "all" (or nothing) means every state."""
    if text is None or text.strip() in ("", "all"):
        return ()
    states = []
    for part in text.split(","):
        try:
            states.append(MembershipState(part.strip()))
        except ValueError:
            known = ", ".join(s.value for s in MembershipState)
            raise QueryError(f"unknown state {part.strip()!r}; use one of {known} or all") from None
    return tuple(states)


def queue_filter_from(channel: str, params: Mapping[str, str]) -> QueueFilter:
    """Build a queue filter from query parameters (`state`, `check`, `name`, `upstream`, ages in days)."""
    state = params.get("state")
    return QueueFilter(
        channel=channel,
        states=(MembershipState.PASSED,) if state is None else parse_states(state),
        check=_text(params, "check"),
        name=_text(params, "name"),
        upstream=_text(params, "upstream"),
        max_age_days=_days(params, "max_age_days"),
        min_age_days=_days(params, "min_age_days"),
    )


def page_from(params: Mapping[str, str]) -> int:
    text = params.get("page") or "1"
    try:
        return check_page(int(text))
    except ValueError:
        raise QueryError(f"page must be a whole number from 1 to {MAX_PAGE}, got {text[:20]!r}") from None


def _text(params: Mapping[str, str], key: str) -> str | None:
    value = (params.get(key) or "").strip()
    if len(value) > 255:
        raise QueryError(f"{key} is longer than 255 characters")
    return value or None


def _days(params: Mapping[str, str], key: str) -> float | None:
    text = (params.get(key) or "").strip()
    if not text:
        return None
    try:
        days = float(text)
    except ValueError:
        raise QueryError(f"{key} must be a number of days, got {text[:20]!r}") from None
    if not 0 <= days <= 36500:
        raise QueryError(f"{key} must be between 0 and 36500 days, got {text[:20]!r}")
    return days


def check_page(page: int) -> int:
    if page < 1 or page > MAX_PAGE:
        raise QueryError(f"page must be a whole number from 1 to {MAX_PAGE}, got {page}")
    return page


def queue_query(query_filter: QueueFilter, *, now: datetime | None = None) -> Select:
    """Return the SELECT of the memberships that match `query_filter`, oldest first."""
    now = now or datetime.now(UTC)
    conditions = [ChannelMembership.channel == query_filter.channel]
    if query_filter.states:
        conditions.append(ChannelMembership.state.in_(query_filter.states))
    if query_filter.name:
        conditions.append(Artifact.name >= query_filter.name)
        conditions.append(Artifact.name < query_filter.name + MAX_CHAR)
    if query_filter.upstream:
        conditions.append(Artifact.upstream == query_filter.upstream)
    if query_filter.max_age_days is not None:
        conditions.append(Artifact.first_seen >= now - timedelta(days=query_filter.max_age_days))
    if query_filter.min_age_days is not None:
        conditions.append(Artifact.first_seen <= now - timedelta(days=query_filter.min_age_days))
    if query_filter.check:
        # NOTE: any stored result counts, including one of an older check version
        # that a rerun has since replaced.
        conditions.append(
            exists().where(
                ValidationResult.artifact_id == Artifact.id,
                ValidationResult.check_name == query_filter.check,
                ValidationResult.outcome.in_(NOT_PASSED),
            )
        )
    return (
        select(ChannelMembership, Artifact)
        .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
        .where(and_(*conditions))
        .order_by(ChannelMembership.id)
    )


def queue_page(session: Session, query_filter: QueueFilter, page: int = 1, page_size: int = PAGE_SIZE) -> Page:
    """Return one page of the review queue with each row's checks that did not pass."""
    check_page(page)
    query = queue_query(query_filter)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.execute(query.limit(page_size).offset((page - 1) * page_size)).all()

    problems = _problems_of(session, [artifact.id for _, artifact in rows])
    items = [_queue_row(membership, artifact, problems.get(artifact.id, [])) for membership, artifact in rows]
    return Page(items, total, page, page_size, query_filter.as_params())


def _problems_of(session: Session, artifact_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    if not artifact_ids:
        return {}
    results = session.scalars(
        select(ValidationResult)
        .where(ValidationResult.artifact_id.in_(artifact_ids), ValidationResult.outcome.in_(NOT_PASSED))
        .order_by(ValidationResult.id)
    )
    problems: dict[int, dict[str, dict[str, str]]] = {}
    for result in results:
        # Later rows are newer check versions, so they replace earlier ones.
        problems.setdefault(result.artifact_id, {})[result.check_name] = {
            "check": result.check_name, "outcome": result.outcome.value, "summary": result.summary,
        }
    return {artifact_id: list(by_check.values()) for artifact_id, by_check in problems.items()}


def _queue_row(membership: ChannelMembership, artifact: Artifact, problems: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": membership.id,
        "channel": membership.channel,
        "state": membership.state.value,
        "reason": _clip(membership.reason),
        "requested_by": membership.requested_by,
        "filename": artifact.filename,
        "name": artifact.name,
        "version": artifact.version,
        "build": artifact.build,
        "subdir": artifact.subdir,
        "upstream": artifact.upstream,
        "size": artifact.size,
        "first_seen": _aware(artifact.first_seen),
        "updated_at": _aware(membership.updated_at),
        "checks_not_passed": problems,
    }


def load_membership(session: Session, membership_id: int) -> ChannelMembership | None:
    return session.scalar(
        select(ChannelMembership)
        .where(ChannelMembership.id == membership_id)
        .options(selectinload(ChannelMembership.artifact), selectinload(ChannelMembership.approvals))
    )


def package_detail(session: Session, membership: ChannelMembership) -> dict[str, Any]:
    """Return the record, results, approvals, other channels and audit trail of one membership."""
    artifact = membership.artifact
    row = _queue_row(membership, artifact, [])
    del row["checks_not_passed"]
    record = artifact.record or {}
    row.update({
        "artifact_id": artifact.id,
        "sha256": artifact.sha256,
        "md5": artifact.md5,
        "artifact_state": artifact.state.value,
        "removed_upstream": artifact.removed_upstream,
        "selected_by": membership.selected_by,
        "published_at": _aware(membership.published_at),
        "record": record,
        "depends": list(record.get("depends") or []),
        "constrains": list(record.get("constrains") or []),
        "licence": record.get("license"),
        "results": latest_results(session, artifact.id),
        "approvals": [
            {"actor": a.actor, "comment": a.comment, "at": _aware(a.at)} for a in membership.approvals
        ],
        "other_channels": [
            {"id": other.id, "channel": other.channel, "state": other.state.value}
            for other in artifact.memberships if other.id != membership.id
        ],
        "audit": [
            _audit_row(event, artifact.filename) for event in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.artifact_id == artifact.id)
                .order_by(AuditEvent.id.desc())
                .limit(AUDIT_EVENTS_ON_PACKAGE)
            )
        ],
    })
    return row


def latest_results(session: Session, artifact_id: int) -> list[dict[str, Any]]:
    """Return the newest stored result of each check of one artifact, in the order they ran."""
    latest: dict[str, ValidationResult] = {}
    for result in session.scalars(
        select(ValidationResult).where(ValidationResult.artifact_id == artifact_id).order_by(ValidationResult.id)
    ):
        latest[result.check_name] = result
    return [
        {"check": r.check_name, "version": r.check_version, "outcome": r.outcome.value, "summary": r.summary,
         "evidence": r.evidence or {}, "at": _aware(r.created_at)}
        for r in sorted(latest.values(), key=lambda r: r.id)
    ]


def last_approved(session: Session, membership: ChannelMembership) -> ChannelMembership | None:
    """Return the newest approved membership of the same package name, subdir and format in the channel.

    "Newest" is by the artifact's first sighting, which follows upstream
    release order for a mirror that syncs regularly.
    """
    artifact = membership.artifact
    suffix = ".conda" if artifact.filename.endswith(".conda") else ".tar.bz2"
    candidates = session.scalars(
        select(ChannelMembership)
        .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
        .where(
            ChannelMembership.channel == membership.channel,
            ChannelMembership.state == MembershipState.APPROVED,
            ChannelMembership.id != membership.id,
            Artifact.name == artifact.name,
            Artifact.subdir == artifact.subdir,
        )
        .order_by(Artifact.first_seen.desc(), Artifact.id.desc())
        .options(selectinload(ChannelMembership.artifact))
        .limit(20)
    )
    matching = [c for c in candidates if c.artifact.filename.endswith(suffix)]
    return matching[0] if matching else None


def runs_page(session: Session, page: int = 1, page_size: int = PAGE_SIZE) -> Page:
    """Return sync, validate and publish runs, newest first."""
    check_page(page)
    total = session.scalar(select(func.count(SyncRun.id))) or 0
    runs = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(page_size).offset((page - 1) * page_size))
    items = [
        {"id": run.id, "kind": run.kind, "status": run.status.value, "started_at": _aware(run.started_at),
         "finished_at": _aware(run.finished_at), "counts": run.counts or {}, "errors": list(run.errors or [])}
        for run in runs
    ]
    return Page(items, total, page, page_size)


def channel_summaries(session: Session, config: MirrorConfig, visible: list[str]) -> list[dict[str, Any]]:
    """Return each visible channel's policy, counts by state, approved size and last publish."""
    counts: dict[str, dict[str, int]] = {name: {} for name in visible}
    for channel, state, count in session.execute(
        select(ChannelMembership.channel, ChannelMembership.state, func.count())
        .where(ChannelMembership.channel.in_(visible))
        .group_by(ChannelMembership.channel, ChannelMembership.state)
    ):
        counts[channel][state.value] = count

    sizes = dict(session.execute(
        select(ChannelMembership.channel, func.coalesce(func.sum(Artifact.size), 0))
        .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
        .where(ChannelMembership.channel.in_(visible), ChannelMembership.state == MembershipState.APPROVED)
        .group_by(ChannelMembership.channel)
    ).all())
    published = dict(session.execute(
        select(ChannelMembership.channel, func.max(ChannelMembership.published_at))
        .where(ChannelMembership.channel.in_(visible))
        .group_by(ChannelMembership.channel)
    ).all())

    summaries = []
    for name in visible:
        channel = config.channels[name]
        summaries.append({
            "name": name,
            "description": channel.description,
            "approval": channel.approval,
            "approvals_required": channel.approvals_required,
            "checks": list(channel.checks),
            "counts": {state.value: counts[name].get(state.value, 0) for state in MembershipState},
            "approved_bytes": int(sizes.get(name) or 0),
            "last_publish": _aware(published.get(name)),
        })
    return summaries


@dataclass(frozen=True)
class AuditFilter:
    """Audit search: exact actor, action and channel; `text` is a substring of the reason."""

    actor: str | None = None
    action: str | None = None
    channel: str | None = None
    text: str | None = None

    def as_params(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value}

    @classmethod
    def from_query(cls, query) -> AuditFilter:
        """Build a filter from request query parameters, trimmed and capped at 255 characters."""
        return cls(**{key: (query.get(key) or "").strip()[:255] or None for key in ("actor", "action", "channel", "text")})


def audit_page(session: Session, audit_filter: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE) -> Page:
    """Return audit events that match `audit_filter`, newest first, with the file each concerns."""
    check_page(page)
    conditions = []
    if audit_filter.actor:
        conditions.append(AuditEvent.actor == audit_filter.actor)
    if audit_filter.action:
        conditions.append(AuditEvent.action == audit_filter.action)
    if audit_filter.channel:
        conditions.append(AuditEvent.channel == audit_filter.channel)
    if audit_filter.text:
        pattern = "%" + audit_filter.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(AuditEvent.reason.like(pattern, escape="\\"), Artifact.filename.like(pattern, escape="\\")))

    query = (
        select(AuditEvent, Artifact.filename)
        .outerjoin(Artifact, AuditEvent.artifact_id == Artifact.id)
        .where(*conditions)
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(AuditEvent.id.desc()).limit(page_size).offset((page - 1) * page_size))
    items = [_audit_row(event, filename) for event, filename in rows]
    return Page(items, total, page, page_size, audit_filter.as_params())


def _audit_row(event: AuditEvent, filename: str | None) -> dict[str, Any]:
    return {
        "id": event.id, "at": _aware(event.at), "actor": event.actor, "action": event.action,
        "channel": event.channel, "artifact_id": event.artifact_id, "filename": filename,
        "reason": _clip(event.reason), "details": event.details or {},
    }


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_REASON_CHARS:
        return text
    return text[:MAX_REASON_CHARS] + " ..."


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
