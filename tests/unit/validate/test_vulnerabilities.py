"""Vulnerabilities check: evidence of matched advisories and a version tied to the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror.advisories.importer import import_advisories
from mirror.advisories.matching import AdvisoryIndex
from mirror.advisories.policy import evaluate_vulnerabilities
from mirror.catalog.models import CheckOutcome
from mirror.catalog.session import Catalog
from mirror.config.schema import VulnerabilityPolicy
from mirror.validate.checks.vulnerabilities import VulnerabilitiesCheck
from mirror.validate.pipeline import run_checks
from mirror.validate.result import CheckContext

ADVISORY = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": "2024-03-01T10:00:00Z",
    "aliases": ["CVE-2024-0001"],
    "summary": "Path traversal in requests-toolbelt",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests-toolbelt"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0.1"}]}],
        }
    ],
    "database_specific": {"severity": "HIGH"},
}


@pytest.fixture
def index(tmp_path: Path) -> AdvisoryIndex:
    folder = tmp_path / "osv"
    folder.mkdir()
    (folder / "GHSA-aaaa-bbbb-cccc.json").write_text(json.dumps(ADVISORY))
    catalog = Catalog("sqlite:///" + str(tmp_path / "c.db"))
    try:
        with catalog.session() as session:
            import_advisories(session, folder)
            return AdvisoryIndex.load(session)
    finally:
        catalog.close()


def context_for(tmp_path: Path, name: str, version: str) -> CheckContext:
    record = {"name": name, "version": version, "build": "pyhd8ed1ab_0", "license": "Apache-2.0"}
    return CheckContext(
        path=tmp_path / "unused.conda", filename=f"{name}-{version}-pyhd8ed1ab_0.conda", subdir="noarch", record=record
    )


def test_version_carries_fingerprint(index):
    check = VulnerabilitiesCheck(index)
    assert check.version == f"1+{index.fingerprint}"
    assert len(check.version) <= 32


def test_match_warns_with_evidence(index, tmp_path):
    result = VulnerabilitiesCheck(index).run(context_for(tmp_path, "requests-toolbelt", "1.0.0"))
    assert result.outcome == CheckOutcome.WARN
    assert "GHSA-aaaa-bbbb-cccc (high, fixed in 2.0.1)" in result.summary
    assert result.evidence["looked_up"] == ["PyPI:requests-toolbelt"]
    assert result.evidence["database"] == index.fingerprint
    (advisory,) = result.evidence["advisories"]
    assert advisory["advisory_id"] == "GHSA-aaaa-bbbb-cccc"
    assert advisory["aliases"] == ["CVE-2024-0001"]
    assert advisory["severity"] == "high"
    assert advisory["affected"] == ["ECOSYSTEM <2.0.1"]
    assert advisory["fixed"] == ["2.0.1"]


def test_fixed_version_passes(index, tmp_path):
    result = VulnerabilitiesCheck(index).run(context_for(tmp_path, "requests-toolbelt", "2.0.1"))
    assert result.outcome == CheckOutcome.PASS
    assert result.evidence["advisories"] == []


def test_record_without_version_errors(index, tmp_path):
    context = CheckContext(path=tmp_path / "x.conda", filename="x.conda", subdir="noarch", record={"name": "x"})
    result = VulnerabilitiesCheck(index).run(context)
    assert result.outcome == CheckOutcome.ERROR


def test_pipeline_stores_evidence(index, tmp_path):
    ((check, result),) = run_checks(context_for(tmp_path, "requests-toolbelt", "1.0.0"), [VulnerabilitiesCheck(index)])
    assert check.name == "vulnerabilities"
    assert result.outcome == CheckOutcome.WARN
    assert json.loads(json.dumps(result.evidence)) == result.evidence


def test_evidence_feeds_policy(index, tmp_path):
    result = VulnerabilitiesCheck(index).run(context_for(tmp_path, "requests-toolbelt", "1.0.0"))
    assert evaluate_vulnerabilities(result.evidence, VulnerabilityPolicy(max_severity="medium"))[0] == CheckOutcome.FAIL
    assert evaluate_vulnerabilities(result.evidence, VulnerabilityPolicy(max_severity="high"))[0] == CheckOutcome.PASS
