"""Turn check results into a channel decision.

A failure keeps the package out. A warning holds it for a reviewer even on
an `approval: auto` channel, because a warning means a human should look.
A clean pass is approved at once on `approval: auto` channels and waits
for a reviewer on `approval: manual` ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mirror.catalog.models import CheckOutcome, MembershipState
from mirror.config.schema import ChannelConfig
from mirror.validate.pipeline import verdict
from mirror.validate.result import CheckResult

AUTO_APPROVER = "policy:auto"


@dataclass(frozen=True)
class Decision:
    state: MembershipState
    reason: str


def decide(channel: ChannelConfig, results: Iterable[tuple[str, CheckResult]]) -> Decision:
    """Decide a membership's state from (check name, result) pairs."""
    results = list(results)
    outcome = verdict(result for _, result in results)
    notable = "; ".join(
        f"{name}: {result.summary}" for name, result in results if result.outcome != CheckOutcome.PASS
    )

    if outcome in (CheckOutcome.FAIL, CheckOutcome.ERROR):
        return Decision(MembershipState.FAILED, f"validation {outcome.value}: {notable}")
    if outcome == CheckOutcome.WARN:
        return Decision(MembershipState.PASSED, f"held for review because of warnings: {notable}")
    if channel.approval == "auto":
        return Decision(MembershipState.APPROVED, "all checks passed; approved by the channel's auto policy")
    return Decision(MembershipState.PASSED, "all checks passed; waiting for a reviewer's approval")
