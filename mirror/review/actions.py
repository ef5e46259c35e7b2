"""Reviewer decisions: approve, reject, revoke and promote, each an audit event.

These functions change the catalog only; the next publish carries the
change to the channel index. Every one requires a comment, because an
audit trail without reasons cannot be reviewed later. Errors are
`ReviewError`s whose message states what to do instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mirror.catalog.models import Approval, Artifact, ChannelMembership, MembershipState
from mirror.config.schema import MirrorConfig
from mirror.errors import MirrorError
from mirror.jobs.context import audit

logger = logging.getLogger(__name__)

# States from which a reviewer may approve: held for review, or (on a
# manual channel) passed and waiting. A failed file needs a new upstream
# file or a fixed check, not an approval.
APPROVABLE = frozenset({MembershipState.PASSED})
REJECTABLE = frozenset({MembershipState.PENDING, MembershipState.PASSED, MembershipState.APPROVED, MembershipState.FAILED})


class ReviewError(MirrorError):
    """A review action is not allowed; the message gives the reason and what to do."""


@dataclass(frozen=True)
class ActionResult:
    membership_id: int
    state: MembershipState
    message: str


def _load(session: Session, membership_id: int) -> ChannelMembership:
    membership = session.get(ChannelMembership, membership_id)
    if membership is None:
        raise ReviewError(f"no package membership with id {membership_id}; list them with 'mirror review list'")
    return membership


def _require_comment(comment: str | None) -> str:
    text = (comment or "").strip()
    if not text:
        raise ReviewError("a comment is required: say why, for the audit log")
    return text


def twins_of(session: Session, membership: ChannelMembership) -> list[ChannelMembership]:
    """Return the membership of the same build in the other archive format, in the same channel and state.

    A build listed as both `.conda` and `.tar.bz2` is one decision for a
    reviewer, so every action applies to both files.
    """
    artifact = membership.artifact
    stem = artifact.filename.removesuffix(".tar.bz2").removesuffix(".conda")
    other = f"{stem}.tar.bz2" if artifact.filename.endswith(".conda") else f"{stem}.conda"
    twin = session.scalar(
        select(ChannelMembership).join(Artifact).filter(
            ChannelMembership.channel == membership.channel,
            ChannelMembership.state == membership.state,
            Artifact.upstream == artifact.upstream,
            Artifact.subdir == artifact.subdir,
            Artifact.filename == other,
        )
    )
    return [twin] if twin is not None else []


def _on_build(
    session: Session,
    membership_id: int,
    comment: str,
    act: Callable[[ChannelMembership, str], ActionResult],
) -> ActionResult:
    """Apply `act` to a membership and to its other-format twin; return the first result."""
    comment = _require_comment(comment)
    membership = _load(session, membership_id)
    twins = twins_of(session, membership)
    result = act(membership, comment)
    for twin in twins:
        act(twin, comment)
    return result


def approve(session: Session, config: MirrorConfig, membership_id: int, actor: str, comment: str) -> ActionResult:
    """Record one reviewer's approval of a build (both formats); it is approved once the channel has enough."""
    return _on_build(session, membership_id, comment, lambda m, c: _approve_one(session, config, m, actor, c))


def _approve_one(session: Session, config: MirrorConfig, membership: ChannelMembership, actor: str, comment: str) -> ActionResult:
    key = membership.artifact.key
    if membership.state not in APPROVABLE:
        raise ReviewError(
            f"{key} in channel {membership.channel} is {membership.state.value}; only packages waiting "
            f"for review can be approved ({membership.reason or 'no reason recorded'})"
        )
    if membership.requested_by and membership.requested_by == actor:
        raise ReviewError(f"{actor} requested {key} and may not approve it; ask another reviewer")
    if any(approval.actor == actor for approval in membership.approvals):
        raise ReviewError(f"{actor} has already approved {key} in channel {membership.channel}; a second reviewer must approve")

    membership.approvals.append(Approval(actor=actor, comment=comment))
    required = _channel(config, membership.channel).approvals_required
    count = len(membership.approvals)
    if count >= required:
        membership.state = MembershipState.APPROVED
        membership.reason = f"approved by {', '.join(a.actor for a in membership.approvals)}: {comment}"
        audit(session, actor, "approved", channel=membership.channel, artifact_id=membership.artifact_id, reason=comment)
        message = f"{key} approved in channel {membership.channel}"
    else:
        membership.reason = f"{count} of {required} approvals ({', '.join(a.actor for a in membership.approvals)}); waiting for another reviewer"
        audit(session, actor, "approval_recorded", channel=membership.channel, artifact_id=membership.artifact_id, reason=comment, approvals=count, required=required)
        message = f"approval recorded for {key}: {count} of {required}"
    logger.info("%s by %s", message, actor)
    return ActionResult(membership.id, membership.state, message)


def reject(session: Session, membership_id: int, actor: str, comment: str) -> ActionResult:
    """Reject a build (both formats) in one channel; an approved one leaves the index at the next publish."""
    return _on_build(session, membership_id, comment, lambda m, c: _reject_one(session, m, actor, c))


def _reject_one(session: Session, membership: ChannelMembership, actor: str, comment: str) -> ActionResult:
    if membership.state not in REJECTABLE:
        raise ReviewError(f"{membership.artifact.key} is {membership.state.value} in channel {membership.channel} and cannot be rejected")
    membership.state = MembershipState.REJECTED
    membership.reason = f"rejected by {actor}: {comment}"
    membership.approvals.clear()
    audit(session, actor, "rejected", channel=membership.channel, artifact_id=membership.artifact_id, reason=comment)
    logger.info("%s rejected in channel %s by %s", membership.artifact.key, membership.channel, actor)
    return ActionResult(membership.id, membership.state, f"{membership.artifact.key} rejected in channel {membership.channel}")


def revoke(session: Session, membership_id: int, actor: str, comment: str) -> ActionResult:
    """Withdraw an approval of a build (both formats): back to the review queue, out of the index at the next publish."""
    return _on_build(session, membership_id, comment, lambda m, c: _revoke_one(session, m, actor, c))


def _revoke_one(session: Session, membership: ChannelMembership, actor: str, comment: str) -> ActionResult:
    if membership.state != MembershipState.APPROVED:
        raise ReviewError(f"{membership.artifact.key} is not approved in channel {membership.channel}; nothing to revoke")
    membership.state = MembershipState.PASSED
    membership.reason = f"approval revoked by {actor}: {comment}"
    membership.approvals.clear()
    audit(session, actor, "approval_revoked", channel=membership.channel, artifact_id=membership.artifact_id, reason=comment)
    return ActionResult(membership.id, membership.state, f"approval of {membership.artifact.key} revoked in channel {membership.channel}")


def promote(session: Session, config: MirrorConfig, membership_id: int, target: str, actor: str, comment: str) -> ActionResult:
    """Offer an approved build (both formats) to another channel; the target's own checks and policy decide."""
    _require_comment(comment)
    _channel(config, target)
    return _on_build(session, membership_id, comment, lambda m, c: _promote_one(session, m, target, actor, c))


def _promote_one(session: Session, membership: ChannelMembership, target: str, actor: str, comment: str) -> ActionResult:
    if membership.state != MembershipState.APPROVED:
        raise ReviewError(f"only approved packages can be promoted; {membership.artifact.key} is {membership.state.value} in {membership.channel}")
    if target == membership.channel:
        raise ReviewError(f"{membership.artifact.key} is already in channel {target}")

    existing = session.scalar(select(ChannelMembership).filter_by(channel=target, artifact_id=membership.artifact_id))
    reason = f"promoted from {membership.channel} by {actor}: {comment}"
    if existing is None:
        existing = ChannelMembership(channel=target, artifact_id=membership.artifact_id, state=MembershipState.PENDING, selected_by=reason, requested_by=actor)
        session.add(existing)
    elif existing.state in (MembershipState.APPROVED, MembershipState.PENDING):
        raise ReviewError(f"{membership.artifact.key} is already {existing.state.value} in channel {target}")
    else:
        existing.state = MembershipState.PENDING
        existing.selected_by = reason
        existing.requested_by = actor
        existing.approvals.clear()
    existing.reason = "promoted; waiting for the target channel's checks (run 'mirror validate')"
    session.flush()
    audit(session, actor, "promoted", channel=target, artifact_id=membership.artifact_id, reason=comment, source=membership.channel)
    return ActionResult(existing.id, existing.state, f"{membership.artifact.key} promoted from {membership.channel} to {target}")


def _channel(config: MirrorConfig, name: str):
    channel = config.channels.get(name)
    if channel is None:
        raise ReviewError(f"unknown channel {name!r}; configured: {', '.join(config.channels)}")
    return channel


def find_membership(session: Session, channel: str, filename: str) -> ChannelMembership | None:
    """Return the membership of a file name in a channel (any upstream or subdir)."""
    return session.scalar(
        select(ChannelMembership).join(Artifact).filter(ChannelMembership.channel == channel, Artifact.filename == filename)
    )
