"""Matching conda names and versions against imported advisories."""

from __future__ import annotations

import copy

import pytest

from mirror.advisories.importer import import_advisories
from mirror.advisories.matching import AdvisoryIndex, describe_range, load_name_map
from mirror.advisories.versions import in_range, semver_key
from mirror.errors import ConfigError

from .conftest import OPENSSL_STYLE_ADVISORY, RANGE_ADVISORY, SEMVER_ADVISORY, write_json


@pytest.fixture
def index(catalog, osv_folder):
    write_json(osv_folder, "PyPI/extra/openssl-style.json", OPENSSL_STYLE_ADVISORY)
    write_json(osv_folder, "PyPI/extra/semver.json", SEMVER_ADVISORY)
    with catalog.session() as session:
        import_advisories(session, osv_folder)
        return AdvisoryIndex.load(session)


def ids(matches):
    return [match.advisory_id for match in matches]


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("requests-toolbelt", "0.9.1", ["GHSA-aaaa-bbbb-cccc"]),
        ("requests_toolbelt", "2.0.0", ["GHSA-aaaa-bbbb-cccc"]),
        ("requests-toolbelt", "2.0.1", []),
        ("requests-toolbelt", "2.0.1rc1", ["GHSA-aaaa-bbbb-cccc"]),
        ("requests-toolbelt", "1.9_1", ["GHSA-aaaa-bbbb-cccc"]),
        ("requests-toolbelt", "2.1_1", []),
        ("pytorch", "1.13.1", ["PYSEC-2023-17"]),
        ("pytorch", "1.13.2", []),
        ("torch", "1.13.0", ["PYSEC-2023-17"]),
        ("py-opencv", "4.5.1", ["PYSEC-2024-99"]),
        ("opencv", "4.8.0.74", ["PYSEC-2024-99"]),
        ("py-opencv", "4.8.0.76", []),
        ("py-opencv", "3.4.0", []),
        ("pyopenssl-legacy", "1.1.1k", ["GHSA-1111-2222-3333"]),
        ("pyopenssl-legacy", "1.1.1w", []),
        ("pyopenssl-legacy", "1.1.0h", []),
        ("semver-tool", "1.0.0-beta.11", ["GHSA-4444-5555-6666"]),
        ("semver-tool", "1.0.0-beta.1", []),
        ("semver-tool", "1.3.9", ["GHSA-4444-5555-6666"]),
        ("semver-tool", "1.4.0", []),
        ("semver-tool", "1.2", ["GHSA-4444-5555-6666"]),
        ("numpy", "1.26.4", []),
    ],
)
def test_match_table(index, name, version, expected):
    assert ids(index.match(name, version)) == expected


def test_match_evidence(index):
    (match,) = index.match("requests-toolbelt", "1.0.0")
    assert match.as_evidence() == {
        "advisory_id": "GHSA-aaaa-bbbb-cccc",
        "aliases": ["CVE-2024-0001"],
        "summary": "Path traversal in requests-toolbelt",
        "severity": "high",
        "severity_source": "database_specific.severity HIGH",
        "ecosystem": "PyPI",
        "package": "Requests_Toolbelt",
        "affected": ["ECOSYSTEM <2.0.1"],
        "fixed": ["2.0.1"],
    }


def test_explicit_versions_described(index):
    (match,) = index.match("pytorch", "1.13.0")
    assert match.affected == ["versions 1.13.0, 1.13.1"]
    assert match.fixed == []


def test_candidates(index):
    assert index.candidates("pytorch") == [("PyPI", "torch")]
    assert index.candidates("Pillow") == [("PyPI", "pillow")]
    assert index.candidates("ruamel.yaml") == [("PyPI", "ruamel-yaml")]
    assert ("PyPI", "opencv-python") in index.candidates("py-opencv")


def test_extra_names_file(catalog, osv_folder, tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("my-toolbelt: requests-toolbelt\nrequests-toolbelt: []\n")
    with catalog.session() as session:
        import_advisories(session, osv_folder)
        index = AdvisoryIndex.load(session, extra_names=names)
    assert ids(index.match("my-toolbelt", "1.0")) == ["GHSA-aaaa-bbbb-cccc"]
    assert index.match("requests-toolbelt", "1.0") == []


def test_extra_names_invalid(tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("pytorch: {name: torch}\n")
    with pytest.raises(ConfigError, match="pytorch"):
        load_name_map(names)


def test_withdrawn_not_matched(catalog, tmp_path):
    folder = tmp_path / "osv"
    write_json(folder, "a.json", RANGE_ADVISORY)
    with catalog.session() as session:
        import_advisories(session, folder)
        before = AdvisoryIndex.load(session)

    withdrawn = copy.deepcopy(RANGE_ADVISORY)
    withdrawn["modified"] = "2024-06-01T00:00:00Z"
    withdrawn["withdrawn"] = "2024-06-01T00:00:00Z"
    write_json(folder, "a.json", withdrawn)
    with catalog.session() as session:
        import_advisories(session, folder)
        after = AdvisoryIndex.load(session)

    assert ids(before.match("requests-toolbelt", "1.0")) == ["GHSA-aaaa-bbbb-cccc"]
    assert after.match("requests-toolbelt", "1.0") == []
    assert before.fingerprint != after.fingerprint


def test_fingerprint_stable_then_changes(catalog, tmp_path):
    folder = tmp_path / "osv"
    write_json(folder, "a.json", RANGE_ADVISORY)
    with catalog.session() as session:
        import_advisories(session, folder)
        first = AdvisoryIndex.load(session).fingerprint
        again = AdvisoryIndex.load(session).fingerprint
        mapped = AdvisoryIndex.load(session, extra_names={"x": "y"}).fingerprint

    updated = copy.deepcopy(RANGE_ADVISORY)
    updated["modified"] = "2025-01-01T00:00:00Z"
    write_json(folder, "a.json", updated)
    with catalog.session() as session:
        import_advisories(session, folder)
        changed = AdvisoryIndex.load(session).fingerprint

    assert first == again
    assert mapped != first
    assert changed != first


def test_in_range_reopened():
    events = [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.3"}]
    affected = [version for version in ("0.9", "1.0", "1.1", "1.2", "1.9", "2.0", "2.2", "2.3") if in_range(version, "ECOSYSTEM", "PyPI", events)]
    assert affected == ["1.0", "1.1", "2.0", "2.2"]


def test_in_range_unordered_events():
    events = [{"fixed": "2.3"}, {"introduced": "2.0"}]
    assert in_range("2.1", "ECOSYSTEM", "PyPI", events)
    assert not in_range("2.3", "ECOSYSTEM", "PyPI", events)


def test_in_range_git_never_matches():
    assert not in_range("1.0", "GIT", "PyPI", [{"introduced": "0"}])


def test_semver_precedence():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    assert sorted(ordered, key=semver_key) == ordered


def test_describe_range():
    events = [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}]
    assert describe_range("ECOSYSTEM", events, []) == "ECOSYSTEM >=1.0, <1.2 or >=2.0"
    assert describe_range("SEMVER", [{"introduced": "0"}, {"last_affected": "3.1.0"}], []) == "SEMVER <=3.1.0"
