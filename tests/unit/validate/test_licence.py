"""Licence check and policy: messy upstream spellings, SPDX normalisation, allow/deny rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.config.schema import LicencePolicy
from mirror.validate.checks.licence import LicenceCheck
from mirror.validate.licences import evaluate_licence, normalise_licence
from mirror.validate.result import CheckContext

from tests.support.corpus import CORPUS_DIR

PERMISSIVE = LicencePolicy(allow=["Apache-2.0", "BSD-*", "MIT"])


def run_check(record: dict, tmp_path: Path):
    context = CheckContext(path=tmp_path / "unused.conda", filename="pkg-1.0-0.conda", subdir="noarch", record=record)
    return LicenceCheck().run(context)


@pytest.mark.parametrize(
    ("record", "check_outcome", "policy_outcome", "normalised"),
    [
        ({"license": "Apache License 2.0"}, CheckOutcome.PASS, CheckOutcome.PASS, "Apache-2.0"),
        ({"license_family": "Apache Software License"}, CheckOutcome.PASS, CheckOutcome.PASS, "Apache-2.0"),
        ({}, CheckOutcome.WARN, CheckOutcome.WARN, None),
        ({"license": "BSD-3-Clause OR GPL-2.0-only"}, CheckOutcome.PASS, CheckOutcome.PASS, "BSD-3-Clause OR GPL-2.0-only"),
        ({"license": "proprietary - Example Corp"}, CheckOutcome.WARN, CheckOutcome.WARN, "LicenseRef-Proprietary"),
        ({"license": "MIT License"}, CheckOutcome.PASS, CheckOutcome.PASS, "MIT"),
        ({"license": "GPL-3.0-only"}, CheckOutcome.PASS, CheckOutcome.FAIL, "GPL-3.0-only"),
        ({"license": "BSD"}, CheckOutcome.WARN, CheckOutcome.WARN, "LicenseRef-BSD-Family"),
    ],
    ids=["apache-text", "family-only", "missing", "or-expression", "proprietary", "mit-text", "gpl", "bsd-ambiguous"],
)
def test_licence_table(tmp_path, record, check_outcome, policy_outcome, normalised):
    result = run_check(record, tmp_path)
    assert result.outcome == check_outcome
    assert result.evidence["normalised"] == normalised
    outcome, _ = evaluate_licence(result.evidence, PERMISSIVE)
    assert outcome == policy_outcome


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Apache 2.0", "Apache-2.0"),
        ("Apache Software License", "Apache-2.0"),
        ("GPL-3.0-or-later", "GPL-3.0-or-later"),
        ("GPLv3", "GPL-3.0-only"),
        ("GPLv2+", "GPL-2.0-or-later"),
        ("LGPL 2.1", "LGPL-2.1-only"),
        ("PSF", "PSF-2.0"),
        ("Python Software Foundation", "PSF-2.0"),
        ("ZPL 2.1", "ZPL-2.1"),
        ("zlib", "Zlib"),
        ("public domain", "LicenseRef-Public-Domain"),
        ("mit", "MIT"),
        ("GPL (>= 2)", "GPL-2.0-or-later"),
        ("MIT + file LICENSE", "MIT"),
        ("GPL-2 | GPL-3", "GPL-2.0-only OR GPL-3.0-only"),
        ("LGPLv2+ and (LGPLv2+ or MPLv1.1)", "LGPL-2.0-or-later AND (LGPL-2.0-or-later OR MPL-1.1)"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0"),
        ("Modified BSD License (3-clause)", "BSD-3-Clause"),
    ],
)
def test_normalise_spellings(raw, expected):
    licence = normalise_licence({"license": raw})
    assert licence.expression == expected
    assert licence.unknown == {}


def test_normalise_unknown_text():
    licence = normalise_licence({"license": "Ubuntu Font Licence Version 1.0 or MIT"})
    assert licence.expression == "LicenseRef-Unknown-Ubuntu-Font-Licence-Version-1.0 OR MIT"
    assert list(licence.unknown) == ["LicenseRef-Unknown-Ubuntu-Font-Licence-Version-1.0"]
    assert licence.spdx_ids == ["MIT"]


def test_normalise_broken_expression():
    licence = normalise_licence({"license": "(MIT"})
    assert licence.status == "unknown"
    assert licence.spdx_ids == []


def test_license_preferred_over_family():
    licence = normalise_licence({"license": "MIT", "license_family": "GPL"})
    assert licence.source == "license"
    assert licence.expression == "MIT"


def test_evidence_fields(tmp_path):
    result = run_check({"license": "MIT OR Commercial", "license_family": "MIT"}, tmp_path)
    assert result.evidence["raw"] == {"license": "MIT OR Commercial", "license_family": "MIT"}
    assert result.evidence["normalised"] == "MIT OR LicenseRef-Proprietary"
    assert result.evidence["spdx_ids"] == ["MIT"]
    assert list(result.evidence["unknown"]) == ["LicenseRef-Proprietary"]
    assert result.outcome == CheckOutcome.WARN
    assert "LicenseRef-Proprietary" in result.summary


def test_policy_text_names_raw_normalised_rule(tmp_path):
    result = run_check({"license": "Apache License 2.0"}, tmp_path)
    _, text = evaluate_licence(result.evidence, PERMISSIVE)
    assert "'Apache License 2.0'" in text
    assert "'Apache-2.0'" in text
    assert "allowed by 'Apache-2.0'" in text


def test_or_passes_on_any_branch():
    evidence = normalise_licence({"license": "GPL-3.0-only OR MIT"}).as_evidence()
    outcome, text = evaluate_licence(evidence, PERMISSIVE)
    assert outcome == CheckOutcome.PASS
    assert "MIT is allowed by 'MIT'" in text


def test_and_needs_every_part():
    evidence = normalise_licence({"license": "MIT AND GPL-3.0-only"}).as_evidence()
    outcome, text = evaluate_licence(evidence, PERMISSIVE)
    assert outcome == CheckOutcome.FAIL
    assert "GPL-3.0-only matches no allow entry" in text


@pytest.mark.parametrize(
    ("licence", "expected"),
    [
        ("GPL-3.0-or-later", CheckOutcome.FAIL),
        ("GPL-2.0-only", CheckOutcome.PASS),
        ("GPL-3.0-only OR MIT", CheckOutcome.PASS),
        ("MIT AND GPL-3.0-only", CheckOutcome.FAIL),
    ],
)
def test_deny_wins(licence, expected):
    policy = LicencePolicy(allow=["MIT", "GPL-*"], deny=["GPL-3.0-*"])
    outcome, text = evaluate_licence(normalise_licence({"license": licence}).as_evidence(), policy)
    assert outcome == expected
    if expected == CheckOutcome.FAIL:
        assert "denied by 'GPL-3.0-*'" in text


def test_deny_matches_exception():
    policy = LicencePolicy(deny=["Classpath-exception-2.0"])
    evidence = normalise_licence({"license": "GPL-2.0-or-later WITH Classpath-exception-2.0"}).as_evidence()
    outcome, text = evaluate_licence(evidence, policy)
    assert outcome == CheckOutcome.FAIL
    assert "exception Classpath-exception-2.0" in text


def test_empty_allow_allows_known():
    outcome, text = evaluate_licence(normalise_licence({"license": "GPL-2.0-only"}).as_evidence(), LicencePolicy())
    assert outcome == CheckOutcome.PASS
    assert "allow list is empty" in text


def test_empty_allow_still_reviews_unknown():
    outcome, _ = evaluate_licence(normalise_licence({"license": "Proprietary"}).as_evidence(), LicencePolicy())
    assert outcome == CheckOutcome.WARN


@pytest.mark.parametrize(
    ("missing", "expected"),
    [("review", CheckOutcome.WARN), ("reject", CheckOutcome.FAIL), ("allow", CheckOutcome.PASS)],
)
def test_missing_follows_policy(missing, expected):
    policy = LicencePolicy(allow=["MIT"], missing=missing)
    for record in ({}, {"license": "Proprietary - Example Corp"}):
        outcome, text = evaluate_licence(normalise_licence(record).as_evidence(), policy)
        assert outcome == expected
        assert repr(missing) in text


def test_unknown_allowed_by_exact_id():
    policy = LicencePolicy(allow=["MIT", "LicenseRef-Proprietary"])
    outcome, _ = evaluate_licence(normalise_licence({"license": "Proprietary"}).as_evidence(), policy)
    assert outcome == CheckOutcome.PASS


def test_unknown_not_allowed_by_glob():
    policy = LicencePolicy(allow=["*"])
    outcome, _ = evaluate_licence(normalise_licence({"license": "BSD"}).as_evidence(), policy)
    assert outcome == CheckOutcome.WARN


def test_glob_is_case_insensitive():
    outcome, _ = evaluate_licence(normalise_licence({"license": "BSD-3-Clause"}).as_evidence(), LicencePolicy(allow=["bsd-*"]))
    assert outcome == CheckOutcome.PASS


def test_corpus_licences_normalise():
    repodata = json.loads((CORPUS_DIR / "repodata" / "anaconda-r" / "linux-64" / "repodata.json").read_text())
    values = {(record.get("license"), record.get("license_family")) for record in repodata["packages"].values()}
    statuses = set()
    for license_value, family in values:
        evidence = normalise_licence({"license": license_value, "license_family": family}).as_evidence()
        json.dumps(evidence)
        outcome, _ = evaluate_licence(evidence, PERMISSIVE)
        assert outcome in (CheckOutcome.PASS, CheckOutcome.WARN, CheckOutcome.FAIL)
        statuses.add(evidence["status"])
    assert statuses == {"known", "unknown", "missing"}


def test_comma_reads_as_and():
    licence = normalise_licence({"license": "MIT, GPL-3.0-only"})
    assert licence.expression == "MIT AND GPL-3.0-only"
