from __future__ import annotations

import dataclasses
import gzip
import logging

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.validate import CheckResult, default_checks, run_checks, verdict
from mirror.validate.checks import IntegrityCheck

from .builders import good_conda, good_tar_bz2, index_json, info_members, tar_bytes, write_package


class FixedCheck:
    """A check that returns a given result and counts its runs."""

    def __init__(self, name, outcome=CheckOutcome.PASS, *, version="1", gate=False, evidence=None):
        self.name = name
        self.version = version
        self.gate = gate
        self.outcome = outcome
        self.evidence = evidence or {}
        self.runs = 0

    def run(self, context):
        self.runs += 1
        return CheckResult(self.outcome, f"{self.name} {self.outcome.value}", self.evidence)


class RaisingCheck:
    name = "raising"
    version = "1"

    def run(self, context):
        raise RuntimeError("boom on purpose")


class WrongReturnCheck:
    name = "wrong-return"
    version = "1"

    def run(self, context):
        return "pass"


def test_default_checks_order():
    checks = default_checks()

    assert [check.name for check in checks] == ["integrity", "archive", "metadata"]
    assert all(check.version for check in checks)


@pytest.mark.parametrize("builder", [good_tar_bz2, good_conda], ids=["tar.bz2", "conda"])
def test_run_checks_good_package(tmp_path, builder):
    results = run_checks(builder(tmp_path), default_checks())

    assert [check.name for check, _ in results] == ["integrity", "archive", "metadata"]
    assert [result.outcome for _, result in results] == [CheckOutcome.PASS] * 3


def test_run_checks_skips_done(tmp_path):
    first, second = FixedCheck("first"), FixedCheck("second", version="2")

    results = run_checks(good_tar_bz2(tmp_path), [first, second], done={("first", "1"), ("second", "1")})

    assert [check.name for check, _ in results] == ["second"]
    assert first.runs == 0
    assert second.runs == 1


def test_run_checks_raising_check_is_error(tmp_path, caplog):
    after = FixedCheck("after")

    with caplog.at_level(logging.ERROR, logger="mirror.validate.pipeline"):
        results = run_checks(good_tar_bz2(tmp_path), [RaisingCheck(), after])

    error = results[0][1]
    assert error.outcome is CheckOutcome.ERROR
    assert error.summary == "check raising raised RuntimeError: boom on purpose"
    assert error.evidence == {"exception": "RuntimeError", "message": "boom on purpose"}
    assert after.runs == 1
    assert caplog.records[0].exc_info is not None
    assert "demo-1.0-h1234_0.tar.bz2" in caplog.records[0].getMessage()


def test_run_checks_wrong_return_is_error(tmp_path):
    results = run_checks(good_tar_bz2(tmp_path), [WrongReturnCheck()])

    assert results[0][1].outcome is CheckOutcome.ERROR
    assert results[0][1].summary == "check wrong-return returned str instead of a CheckResult"


def test_run_checks_unserialisable_evidence_is_error(tmp_path):
    check = FixedCheck("sets", evidence={"members": {1, 2}})

    results = run_checks(good_tar_bz2(tmp_path), [check])

    assert results[0][1].outcome is CheckOutcome.ERROR
    assert "evidence that is not JSON-serialisable" in results[0][1].summary


def test_run_checks_integrity_fail_stops_later_checks(tmp_path):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, record={**context.record, "sha256": "0" * 64})
    later = FixedCheck("later")

    results = run_checks(context, [IntegrityCheck(), later])

    assert [check.name for check, _ in results] == ["integrity"]
    assert results[0][1].outcome is CheckOutcome.FAIL
    assert later.runs == 0


def test_run_checks_gate_error_stops_later_checks(tmp_path):
    context = good_tar_bz2(tmp_path)
    context.path.unlink()
    later = FixedCheck("later")

    results = run_checks(context, [IntegrityCheck(), later])

    assert results[0][1].outcome is CheckOutcome.ERROR
    assert "StoreError" in results[0][1].summary
    assert later.runs == 0


def test_run_checks_non_gate_fail_continues(tmp_path):
    later = FixedCheck("later")

    results = run_checks(good_tar_bz2(tmp_path), [FixedCheck("failing", CheckOutcome.FAIL), later])

    assert len(results) == 2
    assert later.runs == 1


def test_run_checks_gate_warn_continues(tmp_path):
    later = FixedCheck("later")

    run_checks(good_tar_bz2(tmp_path), [FixedCheck("gate", CheckOutcome.WARN, gate=True), later])

    assert later.runs == 1


def test_run_checks_batch_survives_bad_files(tmp_path):
    # Blobs are named by their sha256, so the three files share tmp_path.
    good = good_tar_bz2(tmp_path)
    gzip_data = gzip.compress(tar_bytes(info_members(index_json())))
    wrong_compression = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", gzip_data, index=index_json())
    missing = good_conda(tmp_path)
    missing.path.unlink()

    verdicts = []
    for context in (wrong_compression, missing, good):
        results = run_checks(context, default_checks())
        verdicts.append(verdict(result for _, result in results))

    assert verdicts == [CheckOutcome.FAIL, CheckOutcome.ERROR, CheckOutcome.PASS]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([CheckOutcome.PASS, CheckOutcome.PASS], CheckOutcome.PASS),
        ([CheckOutcome.PASS, CheckOutcome.WARN], CheckOutcome.WARN),
        ([CheckOutcome.WARN, CheckOutcome.ERROR], CheckOutcome.ERROR),
        ([CheckOutcome.ERROR, CheckOutcome.FAIL, CheckOutcome.WARN], CheckOutcome.FAIL),
    ],
    ids=["pass", "warn", "error", "fail"],
)
def test_verdict_worst_outcome(outcomes, expected):
    assert verdict(CheckResult(outcome, "summary") for outcome in outcomes) is expected


def test_verdict_empty_raises():
    with pytest.raises(ValueError, match="at least one check result"):
        verdict([])
