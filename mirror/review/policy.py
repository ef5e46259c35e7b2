"""Turn check results into one channel's decision.

Checks record facts about a file; a channel's policy judges them. The same
licence can pass on `dev` and be held on `prod`, so licence and advisory
results are judged here, per channel, against its allow lists and
thresholds. Then:

- a failure (or a check that could not decide) keeps the package out;
- a warning holds it for a reviewer, even on an `approval: auto` channel,
  unless the channel sets `allow_warnings`;
- a release younger than the channel's `min_age_hours` waits (cooldown);
- a clean pass is approved at once on `approval: auto` channels and waits
  for a reviewer on `approval: manual` ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mirror.catalog.models import CheckOutcome, MembershipState
from mirror.config.schema import ChannelConfig
from mirror.validate.pipeline import verdict
from mirror.validate.result import CheckResult

AUTO_APPROVER = "policy:auto"

# Checks that run on the whole channel at publish time, not on one file.
CHANNEL_LEVEL_CHECKS = frozenset({"consistency"})


@dataclass(frozen=True)
class Decision:
    state: MembershipState
    reason: str


Judge = Callable[[Mapping[str, Any], ChannelConfig], tuple[CheckOutcome, str]]


def file_checks(channel: ChannelConfig) -> list[str]:
    """Return the per-file checks a channel requires, in its configured order."""
    return [name for name in channel.checks if name not in CHANNEL_LEVEL_CHECKS]


def decide(
    channel: ChannelConfig,
    results: Mapping[str, CheckResult],
    *,
    released_at: datetime | None = None,
    now: datetime | None = None,
) -> Decision | None:
    """Decide a membership from its file's check results; None while results are missing.

    `results` maps check name to result. `released_at` is when upstream
    published the file, for the cooldown.
    """
    judged = _judge(channel, results)
    if judged is None:
        return None

    outcome = verdict(result for _, result in judged)
    notable = "; ".join(f"{name}: {r.summary}" for name, r in judged if r.outcome != CheckOutcome.PASS)

    if outcome in (CheckOutcome.FAIL, CheckOutcome.ERROR):
        return Decision(MembershipState.FAILED, f"validation {outcome.value}: {notable}")
    if outcome == CheckOutcome.WARN and not channel.allow_warnings:
        return Decision(MembershipState.PASSED, f"held for review because of warnings: {notable}")

    waiting = _cooldown(channel, released_at, now)
    if waiting is not None:
        return Decision(MembershipState.PENDING, waiting)

    warned = f" (warnings allowed on this channel: {notable})" if notable else ""
    if channel.approval == "auto":
        return Decision(MembershipState.APPROVED, f"all required checks passed{warned}; approved by the channel's auto policy")
    return Decision(MembershipState.PASSED, f"all required checks passed{warned}; waiting for a reviewer's approval")


def _judge(channel: ChannelConfig, results: Mapping[str, CheckResult]) -> list[tuple[str, CheckResult]] | None:
    required = file_checks(channel)
    failed_gate = any(r.outcome == CheckOutcome.FAIL for r in results.values())
    judged = []
    for name in required:
        result = results.get(name)
        if result is None:
            if failed_gate:
                continue  # a failed gate leaves later checks unrun on purpose
            return None
        judge = _judges().get(name)
        if judge is not None and result.outcome in (CheckOutcome.PASS, CheckOutcome.WARN):
            outcome, summary = judge(result.evidence, channel)
            result = CheckResult(outcome=outcome, summary=summary, evidence=result.evidence)
        judged.append((name, result))
    return judged


def _judges() -> dict[str, Judge]:
    from mirror.advisories.policy import evaluate_vulnerabilities
    from mirror.validate.licences import evaluate_licence

    return {
        "licence": lambda evidence, channel: evaluate_licence(evidence, channel.licence),
        "vulnerabilities": lambda evidence, channel: evaluate_vulnerabilities(evidence, channel.vulnerabilities),
    }


def _cooldown(channel: ChannelConfig, released_at: datetime | None, now: datetime | None) -> str | None:
    if channel.min_age_hours <= 0 or released_at is None:
        return None
    ready = released_at + timedelta(hours=channel.min_age_hours)
    now = now or datetime.now(UTC)
    if now >= ready:
        return None
    return (
        f"cooldown: released {released_at:%Y-%m-%d %H:%M} UTC, the channel approves releases "
        f"older than {channel.min_age_hours:g} h, so not before {ready:%Y-%m-%d %H:%M} UTC"
    )


def released_at(record: Mapping[str, Any], first_seen: datetime) -> datetime:
    """Return when upstream released a file: the record's timestamp, else when the mirror first saw it."""
    timestamp = record.get("timestamp")
    if isinstance(timestamp, (int, float)) and timestamp > 0:
        # Repodata timestamps are milliseconds; very old records use seconds.
        seconds = timestamp / 1000 if timestamp > 1e11 else timestamp
        return datetime.fromtimestamp(seconds, UTC)
    return first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=UTC)
