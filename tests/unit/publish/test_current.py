"""Tests of current_repodata: newest versions plus the older versions they need."""

from __future__ import annotations

from mirror.publish.current import build_current_repodata
from mirror.publish.repodata import build_repodata

from .helpers import ANACONDA_R_LINUX_64, filename_of, load_json, make_record


def repodata_of(*records, conda=()):
    files = {filename_of(record): record for record in records}
    files.update({filename_of(record, ".conda"): record for record in conda})
    return build_repodata("noarch", files)


def kept_files(current):
    return sorted([*current["packages"], *current["packages.conda"]])


def test_current_keeps_newest_version():
    repodata = repodata_of(
        make_record("a", "1.9"), make_record("a", "1.10"), make_record("a", "1.10rc1")
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == ["a-1.10-0.tar.bz2"]


def test_current_keeps_all_builds_and_formats():
    newest_py311 = make_record("a", "2.0", "py311_0")
    newest_py312 = make_record("a", "2.0", "py312_0")
    repodata = repodata_of(
        make_record("a", "1.0", "py311_0"), newest_py311, newest_py312, conda=[newest_py311]
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == [
        "a-2.0-py311_0.conda",
        "a-2.0-py311_0.tar.bz2",
        "a-2.0-py312_0.tar.bz2",
    ]


def test_current_adds_newest_matching_dependency():
    repodata = repodata_of(
        make_record("a", "1.0"),
        make_record("a", "1.5"),
        make_record("a", "2.0"),
        make_record("b", "3.0", depends=["a >=1,<2"]),
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == ["a-1.5-0.tar.bz2", "a-2.0-0.tar.bz2", "b-3.0-0.tar.bz2"]


def test_current_follows_added_dependencies():
    repodata = repodata_of(
        make_record("a", "1.5", depends=["c 1.*"]),
        make_record("a", "2.0", depends=["c >=2"]),
        make_record("b", "3.0", depends=["a <2"]),
        make_record("c", "1.1"),
        make_record("c", "1.2"),
        make_record("c", "2.0"),
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == [
        "a-1.5-0.tar.bz2",
        "a-2.0-0.tar.bz2",
        "b-3.0-0.tar.bz2",
        "c-1.2-0.tar.bz2",
        "c-2.0-0.tar.bz2",
    ]


def test_current_satisfied_dependency_adds_nothing():
    repodata = repodata_of(
        make_record("a", "1.0"), make_record("a", "2.0"), make_record("b", "1.0", depends=["a >=1"])
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == ["a-2.0-0.tar.bz2", "b-1.0-0.tar.bz2"]


def test_current_matches_build_string():
    repodata = repodata_of(
        make_record("a", "2.0", "h111_0"),
        make_record("a", "1.0", "h222_0"),
        make_record("a", "1.0", "h333_0"),
        make_record("b", "1.0", depends=["a 1.0 h333*"]),
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == [
        "a-1.0-h333_0.tar.bz2",
        "a-2.0-h111_0.tar.bz2",
        "b-1.0-0.tar.bz2",
    ]


def test_current_skips_unparseable_dependency():
    repodata = repodata_of(
        make_record("a", "1.0"), make_record("b", "1.0", depends=[">=1", "a[version=", "a"])
    )

    current = build_current_repodata(repodata)

    assert kept_files(current) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2"]


def test_current_ignores_missing_and_virtual_names():
    repodata = repodata_of(make_record("b", "1.0", depends=["__glibc >=2.17", "not-in-channel"]))

    current = build_current_repodata(repodata)

    assert kept_files(current) == ["b-1.0-0.tar.bz2"]


def test_current_keeps_header_fields():
    repodata = repodata_of(make_record("a", "1.0"))

    current = build_current_repodata(repodata)

    assert current["info"] == {"subdir": "noarch"}
    assert current["repodata_version"] == 1
    assert current["removed"] == []


def test_current_corpus_adds_older_r_base():
    repodata = load_json(ANACONDA_R_LINUX_64)

    current = build_current_repodata(repodata)

    r_base_versions = {
        record["version"] for record in current["packages"].values() if record["name"] == "r-base"
    }
    assert "3.5.0" in r_base_versions
    assert "3.4.3" in r_base_versions
    assert len(current["packages"]) < len(repodata["packages"])
    for filename, record in current["packages"].items():
        assert repodata["packages"][filename] is record
