"""Channel policies: what a set of check results means for one channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mirror.catalog.models import CheckOutcome, MembershipState
from mirror.config.schema import ChannelConfig
from mirror.review.policy import decide, released_at
from mirror.validate.result import CheckResult

BASIC = ["integrity", "archive", "metadata"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def ok(summary="ok"):
    return CheckResult(CheckOutcome.PASS, summary, {})


def results(**overrides):
    base = {name: ok() for name in BASIC}
    base.update(overrides)
    return base


def channel(**settings):
    return ChannelConfig(checks=BASIC + settings.pop("extra_checks", []), **settings)


def test_auto_channel_approves_clean_pass():
    decision = decide(channel(), results(), now=NOW)
    assert decision.state == MembershipState.APPROVED


def test_manual_channel_waits_for_reviewer():
    decision = decide(channel(approval="manual"), results(), now=NOW)
    assert decision.state == MembershipState.PASSED
    assert "reviewer" in decision.reason


def test_failure_keeps_package_out():
    decision = decide(channel(), results(metadata=CheckResult(CheckOutcome.FAIL, "version differs", {})), now=NOW)
    assert decision.state == MembershipState.FAILED
    assert "metadata: version differs" in decision.reason


def test_warning_holds_on_auto_channel():
    decision = decide(channel(), results(archive=CheckResult(CheckOutcome.WARN, "extra zip entry", {})), now=NOW)
    assert decision.state == MembershipState.PASSED
    assert "held for review" in decision.reason


def test_experimental_allows_warnings():
    warned = results(archive=CheckResult(CheckOutcome.WARN, "extra zip entry", {}))
    decision = decide(channel(allow_warnings=True), warned, now=NOW)
    assert decision.state == MembershipState.APPROVED
    assert "extra zip entry" in decision.reason


def test_missing_result_is_undecided():
    partial = {"integrity": ok(), "archive": ok()}
    assert decide(channel(), partial, now=NOW) is None


def test_failed_gate_decides_without_later_checks():
    gate_failed = {"integrity": CheckResult(CheckOutcome.FAIL, "sha256 mismatch", {})}
    decision = decide(channel(), gate_failed, now=NOW)
    assert decision.state == MembershipState.FAILED


def test_checks_outside_channel_are_ignored():
    extra = results(scripts=CheckResult(CheckOutcome.WARN, "post-link script", {}))
    assert decide(channel(), extra, now=NOW).state == MembershipState.APPROVED


@pytest.mark.parametrize("age_hours, expected", [(1, MembershipState.PENDING), (72, MembershipState.APPROVED)])
def test_cooldown(age_hours, expected):
    decision = decide(channel(min_age_hours=48), results(), released_at=NOW - timedelta(hours=age_hours), now=NOW)
    assert decision.state == expected
    if expected == MembershipState.PENDING:
        assert "cooldown" in decision.reason


def test_release_time_from_record():
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    assert released_at({"timestamp": 1_700_000_000_000}, seen) == datetime.fromtimestamp(1_700_000_000, UTC)
    assert released_at({"timestamp": 1_700_000_000}, seen) == datetime.fromtimestamp(1_700_000_000, UTC)
    assert released_at({}, seen) == seen


def test_licence_judged_per_channel():
    evidence = {"raw": {"license": "GPL-3.0-only"}, "source": "license", "normalised": "GPL-3.0-only",
                "spdx_ids": ["GPL-3.0-only"], "unknown": {}, "notes": [], "status": "known"}
    licence = {"licence": CheckResult(CheckOutcome.PASS, "GPL-3.0-only", evidence)}
    open_channel = channel(extra_checks=["licence"])
    strict = channel(extra_checks=["licence"], licence={"deny": ["GPL-*"]})
    assert decide(open_channel, results(**licence), now=NOW).state == MembershipState.APPROVED
    denied = decide(strict, results(**licence), now=NOW)
    assert denied.state == MembershipState.FAILED
    assert "GPL" in denied.reason
