"""Tests of channeldata.json: newest version per name across subdirs."""

from __future__ import annotations

from mirror.publish.channeldata import build_channeldata
from mirror.publish.repodata import build_repodata, empty_repodata

from .helpers import filename_of, make_record


def test_channeldata_newest_across_subdirs():
    linux = make_record(
        "a", "2.0", subdir="linux-64", license="MIT", home="https://a.example", summary="A tool"
    )
    noarch_old = make_record("a", "1.0", license="GPL")
    repodata = {
        "linux-64": build_repodata("linux-64", {filename_of(linux): linux}),
        "noarch": build_repodata("noarch", {filename_of(noarch_old): noarch_old}),
        "win-64": empty_repodata("win-64"),
    }

    channeldata = build_channeldata(repodata, repodata)

    assert channeldata == {
        "channeldata_version": 1,
        "packages": {
            "a": {
                "home": "https://a.example",
                "license": "MIT",
                "reference_package": "linux-64/a-2.0-0.tar.bz2",
                "subdirs": ["linux-64", "noarch"],
                "summary": "A tool",
                "version": "2.0",
            }
        },
        "subdirs": ["linux-64", "noarch", "win-64"],
    }


def test_channeldata_conda_version_order():
    records = [make_record("a", version) for version in ("1.9", "1.10", "1.10.0rc1")]
    repodata = {
        "noarch": build_repodata("noarch", {filename_of(record): record for record in records})
    }

    channeldata = build_channeldata(repodata, ["noarch"])

    assert channeldata["packages"]["a"]["version"] == "1.10"


def test_channeldata_build_number_breaks_tie():
    first = make_record("a", "1.0", "h1_0", build_number=0, license="old")
    second = make_record("a", "1.0", "h1_1", build_number=1, license="new")
    repodata = {"noarch": build_repodata("noarch", {filename_of(r): r for r in (first, second)})}

    channeldata = build_channeldata(repodata, ["noarch"])

    assert channeldata["packages"]["a"]["license"] == "new"
    assert channeldata["packages"]["a"]["reference_package"] == "noarch/a-1.0-h1_1.tar.bz2"


def test_channeldata_unparseable_version_listed():
    record = make_record("odd", "not a version")
    repodata = {"noarch": build_repodata("noarch", {"odd-x-0.tar.bz2": record})}

    channeldata = build_channeldata(repodata, ["noarch"])

    assert channeldata["packages"]["odd"] == {"subdirs": ["noarch"]}
