"""Write a sync's selection into the catalog.

New files become `discovered` artifacts. A changed upstream record is
taken over as a metadata hotfix, unless its size or hashes changed, which
starts the file over. Memberships are created for new selections and
retired for files that the whitelist no longer selects or that upstream
removed. Every change is an audit event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from mirror.catalog.models import Artifact, ArtifactState, ChannelMembership, MembershipState
from mirror.jobs.context import audit

logger = logging.getLogger(__name__)

ACTOR = "sync"
IDENTITY_FIELDS = ("sha256", "md5", "size")


@dataclass
class UpstreamPlan:
    """The files one upstream's entries select, per channel, with their raw records."""

    name: str
    chosen: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)


def record_problem(filename: str, raw: dict[str, Any]) -> str | None:
    """Return why a raw record cannot be catalogued, or None.

    Column limits are checked here because PostgreSQL enforces them while
    SQLite does not, and both must skip the same records.
    """
    values = {"filename": filename, **{key: str(raw.get(key, "")) for key in ("name", "version", "build")}}
    for key, value in values.items():
        limit = Artifact.__table__.c[key].type.length
        if not value and key != "build":
            return f"record has no {key}"
        if len(value) > limit:
            return f"record {key} is {len(value)} characters long, more than the catalog's {limit}"
    return None


def apply_plan(session, plan: UpstreamPlan, report) -> None:
    """Write one upstream's selection into the catalog; `report` counts what changed."""
    artifacts = {
        (a.subdir, a.filename): a
        for a in session.scalars(select(Artifact).filter_by(upstream=plan.name))
    }
    for (subdir, filename), raw in plan.records.items():
        existing = artifacts.get((subdir, filename))
        artifacts[(subdir, filename)] = _upsert_artifact(session, plan.name, subdir, filename, raw, existing, report)

    _mark_removed(session, plan, artifacts)
    selected = _upsert_memberships(session, plan, artifacts, report)
    _retire_unselected(session, plan.name, selected, report)


def _upsert_artifact(session, upstream, subdir, filename, raw, artifact, report) -> Artifact:
    if artifact is None:
        artifact = Artifact(
            upstream=upstream, subdir=subdir, filename=filename, record=raw,
            state=ArtifactState.DISCOVERED, **_identity(raw),
        )
        session.add(artifact)
        session.flush()
        audit(session, ACTOR, "discovered", artifact_id=artifact.id, file=artifact.key)
        report.discovered += 1
        return artifact

    if artifact.record == raw:
        return artifact

    changed = sorted(key for key in set(artifact.record) | set(raw) if artifact.record.get(key) != raw.get(key))
    replaced = any(artifact.record.get(key) != raw.get(key) for key in IDENTITY_FIELDS)
    artifact.record = raw
    for key, value in _identity(raw).items():
        setattr(artifact, key, value)
    report.records_updated += 1

    if replaced:
        # Upstream now lists different bytes under the same name: start over.
        artifact.state = ArtifactState.DISCOVERED
        for membership in artifact.memberships:
            if membership.state != MembershipState.RETIRED:
                membership.state = MembershipState.PENDING
                membership.reason = "upstream replaced the file; validating the new bytes"
                membership.approvals.clear()
        audit(session, ACTOR, "artifact_replaced", artifact_id=artifact.id, fields=changed, file=artifact.key)
        logger.warning("upstream replaced %s (changed: %s); it will be downloaded and validated again", artifact.key, ", ".join(changed))
    else:
        audit(session, ACTOR, "record_updated", artifact_id=artifact.id, reason="upstream metadata change (hotfix)", fields=changed, file=artifact.key)
        logger.info("upstream record of %s changed (%s); published metadata follows it", artifact.key, ", ".join(changed))
    return artifact


def _mark_removed(session, plan: UpstreamPlan, artifacts) -> None:
    for (subdir, filename), artifact in artifacts.items():
        removed = filename in plan.removed.get(subdir, ())
        if removed and not artifact.removed_upstream:
            audit(session, ACTOR, "removed_upstream", artifact_id=artifact.id, file=artifact.key)
        artifact.removed_upstream = removed


def _upsert_memberships(session, plan: UpstreamPlan, artifacts, report) -> set[int]:
    selected_ids: set[int] = set()
    for channel, choice in plan.chosen.items():
        existing = {
            m.artifact_id: m
            for m in session.scalars(
                select(ChannelMembership).join(Artifact).filter(
                    ChannelMembership.channel == channel, Artifact.upstream == plan.name
                )
            )
        }
        for key, reason in choice.items():
            artifact = artifacts.get(key)
            if artifact is None:
                report.errors.append(f"{plan.name}/{key[0]}/{key[1]}: selected but its record could not be read")
                continue
            membership = existing.get(artifact.id)
            if membership is None:
                session.add(ChannelMembership(channel=channel, artifact_id=artifact.id, state=MembershipState.PENDING, selected_by=reason))
                audit(session, ACTOR, "selected", channel=channel, artifact_id=artifact.id, reason=reason)
            elif membership.state == MembershipState.RETIRED:
                membership.state = MembershipState.PENDING
                membership.selected_by = reason
                membership.reason = None
                audit(session, ACTOR, "selected", channel=channel, artifact_id=artifact.id, reason=reason)
            selected_ids.add((channel, artifact.id))
    session.flush()
    return selected_ids


def _retire_unselected(session, upstream: str, selected: set, report) -> None:
    memberships = session.scalars(
        select(ChannelMembership).join(Artifact).filter(
            Artifact.upstream == upstream, ChannelMembership.state != MembershipState.RETIRED
        )
    )
    for membership in memberships:
        if (membership.channel, membership.artifact_id) in selected:
            continue
        artifact = membership.artifact
        reason = "removed from upstream" if artifact.removed_upstream else "no longer selected by the whitelist"
        membership.state = MembershipState.RETIRED
        membership.reason = reason
        audit(session, ACTOR, "retired", channel=membership.channel, artifact_id=artifact.id, reason=reason)
        report.retired += 1


def _identity(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": str(raw.get("name", "")),
        "version": str(raw.get("version", "")),
        "build": str(raw.get("build", "")),
        "build_number": int(raw.get("build_number") or 0),
        "size": raw.get("size"),
        "sha256": raw.get("sha256"),
        "md5": raw.get("md5"),
    }
