"""Advisory severity: GitHub levels and CVSS v3 base scores."""

from __future__ import annotations

import pytest

from mirror.advisories.severity import InvalidVectorError, advisory_severity, cvss3_base_score, severity_of_score


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:C/C:L/I:N/A:N/E:P/RL:O", 3.5),
    ],
)
def test_cvss3_base_score(vector, score):
    assert cvss3_base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    ["CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "garbage"],
)
def test_cvss3_invalid_vector(vector):
    with pytest.raises(InvalidVectorError):
        cvss3_base_score(vector)


@pytest.mark.parametrize(
    ("score", "rating"), [(0.0, "none"), (0.1, "low"), (3.9, "low"), (4.0, "medium"), (6.9, "medium"), (7.0, "high"), (9.0, "critical")]
)
def test_severity_of_score(score, rating):
    assert severity_of_score(score) == rating


def test_github_level_wins_over_vector():
    record = {
        "database_specific": {"severity": "MODERATE"},
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    }
    assert advisory_severity(record) == ("medium", "database_specific.severity MODERATE")


def test_per_package_vector_used():
    record = {
        "affected": [{"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}]}],
    }
    severity, source = advisory_severity(record)
    assert severity == "medium"
    assert "base score 5.3" in source


def test_only_v4_vector_has_no_severity():
    record = {"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}
    assert advisory_severity(record) == (None, None)
