"""Channel judgement on known vulnerabilities, and the re-check after an import.

`evaluate_vulnerabilities` judges the `vulnerabilities` check's evidence
against a channel's `VulnerabilityPolicy`. `recheck` applies the same
threshold to packages that are already approved, because a new advisory
can arrive long after a package was published.

An advisory without a usable severity is not accepted automatically. A
new package with one is held for review (WARN), and an approved one is
flagged but not retired, unless the channel's max severity is "critical".
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mirror.advisories.matching import AdvisoryIndex, Match
from mirror.catalog.models import Artifact, AuditEvent, ChannelMembership, CheckOutcome, MembershipState
from mirror.config.schema import SEVERITY_ORDER, ChannelConfig, VulnerabilityPolicy
from mirror.jobs.context import audit

logger = logging.getLogger(__name__)

ACTOR = "advisories"
RETIRED_ACTION = "retired_vulnerable"
FLAGGED_ACTION = "flagged_vulnerable"
CHECK_NAME = "vulnerabilities"


def severity_above(severity: str | None, max_severity: str) -> bool | None:
    """Return whether `severity` exceeds `max_severity`, or None when the severity is unknown and might."""
    if max_severity == SEVERITY_ORDER[-1]:
        return False
    if severity not in SEVERITY_ORDER:
        return None
    return SEVERITY_ORDER.index(severity) > SEVERITY_ORDER.index(max_severity)


def evaluate_vulnerabilities(evidence: Mapping[str, Any], policy: VulnerabilityPolicy) -> tuple[CheckOutcome, str]:
    """Judge the matched advisories in the check's evidence against one channel's threshold.

    FAIL when any advisory is above `policy.max_severity`, WARN when one
    has no severity and the threshold is below critical, PASS otherwise.
    """
    advisories = list(evidence.get("advisories") or [])
    if not advisories:
        return CheckOutcome.PASS, "no known advisories match this version"

    above, unknown, accepted = _split_by_threshold(advisories, policy.max_severity)
    if above:
        return CheckOutcome.FAIL, (
            f"{_describe(above)} above the channel's max severity {policy.max_severity!r}"
        )
    if unknown:
        return CheckOutcome.WARN, (
            f"{_describe(unknown)} without a severity; a reviewer must judge them "
            f"against the channel's max severity {policy.max_severity!r}"
        )
    return CheckOutcome.PASS, (
        f"{_describe(accepted)} at or below the channel's max severity {policy.max_severity!r}"
    )


def _split_by_threshold(
    advisories: Iterable[Mapping[str, Any]], max_severity: str
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    above, unknown, accepted = [], [], []
    for advisory in advisories:
        verdict = severity_above(advisory.get("severity"), max_severity)
        if verdict is None:
            unknown.append(advisory)
        elif verdict:
            above.append(advisory)
        else:
            accepted.append(advisory)
    return above, unknown, accepted


def _describe(advisories: list[Mapping[str, Any]]) -> str:
    parts = []
    for advisory in advisories:
        fixed = advisory.get("fixed") or []
        fix_note = f", fixed in {', '.join(fixed)}" if fixed else ", no fixed version"
        parts.append(f"{advisory.get('advisory_id')} ({advisory.get('severity') or 'severity unknown'}{fix_note})")
    noun = "advisory" if len(advisories) == 1 else "advisories"
    return f"{len(advisories)} {noun}: {'; '.join(parts)}"


@dataclass(frozen=True)
class Finding:
    """An approved package that newly matches advisories above its channel's threshold."""

    channel: str
    artifact_id: int
    filename: str
    name: str
    version: str
    action: str
    advisory_ids: list[str] = field(default_factory=list)
    reason: str = ""


def recheck(session: Session, index: AdvisoryIndex, channels: Mapping[str, ChannelConfig]) -> list[Finding]:
    """Retire or flag approved memberships that match advisories above their channel's threshold.

    Channels that do not run the `vulnerabilities` check are left alone.
    With `retire: true` the membership becomes RETIRED, so the next
    publish drops the file; otherwise it stays approved and is flagged.
    Each finding writes an audit event. A flagged membership is flagged
    again only for advisories that earlier flags did not name. The caller
    commits.
    """
    already_flagged = _flagged_advisories(session)
    findings = []
    for membership, artifact in _approved_memberships(session):
        channel = channels.get(membership.channel)
        if channel is None or CHECK_NAME not in channel.checks:
            continue
        finding = _recheck_one(membership, artifact, channel, index, already_flagged)
        if finding is None:
            continue
        audit(
            session, ACTOR, finding.action, channel=finding.channel, artifact_id=finding.artifact_id,
            reason=finding.reason, advisories=finding.advisory_ids, filename=finding.filename,
        )
        findings.append(finding)

    logger.info("advisory re-check: %d approved memberships retired or flagged", len(findings))
    return findings


def _approved_memberships(session: Session) -> list[tuple[ChannelMembership, Artifact]]:
    statement = (
        select(ChannelMembership, Artifact)
        .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
        .where(ChannelMembership.state == MembershipState.APPROVED)
        .order_by(ChannelMembership.channel, Artifact.filename)
    )
    return [(membership, artifact) for membership, artifact in session.execute(statement)]


def _flagged_advisories(session: Session) -> dict[tuple[str, int], set[str]]:
    flagged: dict[tuple[str, int], set[str]] = defaultdict(set)
    statement = select(AuditEvent).where(AuditEvent.actor == ACTOR, AuditEvent.action == FLAGGED_ACTION)
    for event in session.scalars(statement):
        if event.channel is not None and event.artifact_id is not None:
            flagged[(event.channel, event.artifact_id)].update((event.details or {}).get("advisories", []))
    return flagged


def _recheck_one(
    membership: ChannelMembership,
    artifact: Artifact,
    channel: ChannelConfig,
    index: AdvisoryIndex,
    already_flagged: Mapping[tuple[str, int], set[str]],
) -> Finding | None:
    policy = channel.vulnerabilities
    matches = index.match(artifact.name, artifact.version)
    above = [match for match in matches if severity_above(match.severity, policy.max_severity)]
    unknown = [match for match in matches if severity_above(match.severity, policy.max_severity) is None]

    if above and policy.retire:
        return _retire(membership, artifact, above, policy)

    new = [
        match for match in above + unknown
        if match.advisory_id not in already_flagged.get((membership.channel, artifact.id), set())
    ]
    if not new:
        return None
    return Finding(
        channel=membership.channel, artifact_id=artifact.id, filename=artifact.filename,
        name=artifact.name, version=artifact.version, action=FLAGGED_ACTION,
        advisory_ids=_ids(new),
        reason=f"{_match_text(new)} match {artifact.name} {artifact.version}; "
        f"the channel's max severity is {policy.max_severity!r} and it does not retire automatically",
    )


def _retire(
    membership: ChannelMembership, artifact: Artifact, above: list[Match], policy: VulnerabilityPolicy
) -> Finding:
    reason = (
        f"retired: {_match_text(above)} affect {artifact.name} {artifact.version}, "
        f"above the channel's max severity {policy.max_severity!r}"
    )
    membership.state = MembershipState.RETIRED
    membership.reason = reason
    logger.warning("%s/%s: %s", membership.channel, artifact.filename, reason)
    return Finding(
        channel=membership.channel, artifact_id=artifact.id, filename=artifact.filename,
        name=artifact.name, version=artifact.version, action=RETIRED_ACTION,
        advisory_ids=_ids(above), reason=reason,
    )


def _ids(matches: list[Match]) -> list[str]:
    return list(dict.fromkeys(match.advisory_id for match in matches))


def _match_text(matches: list[Match]) -> str:
    return ", ".join(f"{match.advisory_id} ({match.severity or 'severity unknown'})" for match in matches)
