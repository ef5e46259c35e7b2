"""Vulnerability policy thresholds and the re-check of approved packages after an import."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mirror.advisories.importer import import_advisories
from mirror.advisories.matching import AdvisoryIndex
from mirror.advisories.policy import evaluate_vulnerabilities, recheck
from mirror.catalog.models import Artifact, AuditEvent, ChannelMembership, CheckOutcome, MembershipState
from mirror.config.schema import ChannelConfig, VulnerabilityPolicy

HIGH = {"advisory_id": "GHSA-high", "severity": "high", "fixed": ["2.0.1"]}
LOW = {"advisory_id": "GHSA-low", "severity": "low", "fixed": []}
UNSCORED = {"advisory_id": "PYSEC-unscored", "severity": None, "fixed": []}


@pytest.mark.parametrize(
    ("advisories", "max_severity", "expected"),
    [
        ([], "none", CheckOutcome.PASS),
        ([LOW], "none", CheckOutcome.FAIL),
        ([LOW], "low", CheckOutcome.PASS),
        ([HIGH, LOW], "medium", CheckOutcome.FAIL),
        ([HIGH], "high", CheckOutcome.PASS),
        ([UNSCORED], "high", CheckOutcome.WARN),
        ([UNSCORED], "critical", CheckOutcome.PASS),
        ([UNSCORED, HIGH], "medium", CheckOutcome.FAIL),
    ],
)
def test_evaluate_thresholds(advisories, max_severity, expected):
    outcome, _ = evaluate_vulnerabilities({"advisories": advisories}, VulnerabilityPolicy(max_severity=max_severity))
    assert outcome == expected


def test_evaluate_text_names_advisories():
    outcome, text = evaluate_vulnerabilities({"advisories": [HIGH, LOW]}, VulnerabilityPolicy(max_severity="low"))
    assert outcome == CheckOutcome.FAIL
    assert "GHSA-high (high, fixed in 2.0.1)" in text
    assert "GHSA-low" not in text
    assert "'low'" in text


def test_evaluate_pass_keeps_note():
    outcome, text = evaluate_vulnerabilities({"advisories": [LOW]}, VulnerabilityPolicy(max_severity="medium"))
    assert outcome == CheckOutcome.PASS
    assert "GHSA-low" in text


def add_membership(session, name: str, version: str, channel: str, state=MembershipState.APPROVED) -> ChannelMembership:
    filename = f"{name}-{version}-py_0.conda"
    artifact = session.scalar(select(Artifact).where(Artifact.filename == filename))
    if artifact is None:
        artifact = Artifact(
            upstream="conda-forge", subdir="noarch", filename=filename, name=name, version=version,
            build="py_0", build_number=0, record={"name": name, "version": version},
        )
        session.add(artifact)
    membership = ChannelMembership(channel=channel, artifact=artifact, state=state)
    session.add(membership)
    return membership


CHANNELS = {
    "strict": ChannelConfig(vulnerabilities=VulnerabilityPolicy(max_severity="medium", retire=True)),
    "lenient": ChannelConfig(vulnerabilities=VulnerabilityPolicy(max_severity="medium", retire=False)),
    "unchecked": ChannelConfig(checks=["integrity", "archive", "metadata"]),
}


@pytest.fixture
def populated(catalog, osv_folder):
    with catalog.session() as session:
        add_membership(session, "requests-toolbelt", "1.0.0", "strict")
        add_membership(session, "requests-toolbelt", "2.0.1", "strict")
        add_membership(session, "requests-toolbelt", "1.0.0", "lenient")
        add_membership(session, "requests-toolbelt", "1.0.0", "unchecked")
        add_membership(session, "pytorch", "1.13.1", "strict", state=MembershipState.PASSED)
        add_membership(session, "pytorch", "1.13.0", "strict")
        import_advisories(session, osv_folder)
    return catalog


def run_recheck(catalog):
    with catalog.session() as session:
        index = AdvisoryIndex.load(session)
        return recheck(session, index, CHANNELS)


def test_recheck_retires_approved(populated):
    findings = run_recheck(populated)

    retired = [finding for finding in findings if finding.action == "retired_vulnerable"]
    assert [(f.channel, f.filename, f.advisory_ids) for f in retired] == [
        ("strict", "requests-toolbelt-1.0.0-py_0.conda", ["GHSA-aaaa-bbbb-cccc"])
    ]
    with populated.session() as session:
        rows = session.execute(
            select(ChannelMembership.channel, Artifact.filename, ChannelMembership.state, ChannelMembership.reason)
            .join(Artifact)
            .order_by(ChannelMembership.channel, Artifact.filename)
        ).all()
        states = {(channel, filename): state for channel, filename, state, _ in rows}
        assert states[("strict", "requests-toolbelt-1.0.0-py_0.conda")] == MembershipState.RETIRED
        assert states[("strict", "requests-toolbelt-2.0.1-py_0.conda")] == MembershipState.APPROVED
        assert states[("lenient", "requests-toolbelt-1.0.0-py_0.conda")] == MembershipState.APPROVED
        assert states[("unchecked", "requests-toolbelt-1.0.0-py_0.conda")] == MembershipState.APPROVED
        assert states[("strict", "pytorch-1.13.1-py_0.conda")] == MembershipState.PASSED
        assert states[("strict", "pytorch-1.13.0-py_0.conda")] == MembershipState.APPROVED
        reason = next(r for c, f, s, r in rows if s == MembershipState.RETIRED)
        assert "GHSA-aaaa-bbbb-cccc" in reason


def test_recheck_writes_audit_events(populated):
    run_recheck(populated)
    with populated.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [(event.actor, event.action, event.channel) for event in events] == [
            ("advisories", "flagged_vulnerable", "lenient"),
            ("advisories", "retired_vulnerable", "strict"),
        ]
        retired = events[1]
        assert retired.details["advisories"] == ["GHSA-aaaa-bbbb-cccc"]
        assert "GHSA-aaaa-bbbb-cccc" in retired.reason
        artifact = session.get(Artifact, retired.artifact_id)
        assert artifact.filename == "requests-toolbelt-1.0.0-py_0.conda"


def test_recheck_medium_not_above_threshold(populated):
    findings = run_recheck(populated)
    assert all("PYSEC-2023-17" not in finding.advisory_ids for finding in findings)


def test_recheck_flags_once(populated):
    first = run_recheck(populated)
    second = run_recheck(populated)
    assert len(first) == 2
    assert second == []
    with populated.session() as session:
        assert len(session.scalars(select(AuditEvent)).all()) == 2
