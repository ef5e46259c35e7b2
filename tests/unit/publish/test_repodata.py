"""Tests of repodata building and deterministic rendering."""

from __future__ import annotations

import pytest

from mirror.publish.errors import PublishError
from mirror.publish.repodata import (
    build_repodata,
    compress_bz2,
    compress_zstd,
    is_package_filename,
    published_record,
    render_json,
)

from .helpers import make_record


def test_render_sorted_compact():
    rendered = render_json({"b": 1, "a": {"d": [1, 2], "c": None}}, document_name="test")

    assert rendered == b'{"a":{"c":null,"d":[1,2]},"b":1}'


def test_render_rejects_nan():
    with pytest.raises(PublishError, match="repodata of noarch could not be serialised"):
        render_json({"size": float("nan")}, document_name="repodata of noarch")


def test_compression_deterministic():
    data = render_json(
        build_repodata("noarch", {"a-1.0-0.conda": make_record("a", "1.0")}), document_name="test"
    )

    assert compress_zstd(data) == compress_zstd(data)
    assert compress_bz2(data) == compress_bz2(data)


def test_published_record_drops_upstream_keys():
    record = make_record(
        "a", "1.0", url="https://up.example/a.conda", channel="https://up.example", fn="a.conda"
    )

    result = published_record(record)

    assert "url" not in result
    assert "channel" not in result
    assert result["fn"] == "a.conda"
    assert "url" in record


def test_build_repodata_sections():
    record = make_record("a", "1.0")

    repodata = build_repodata("linux-64", {"a-1.0-0.conda": record, "a-1.0-0.tar.bz2": record})

    assert list(repodata["packages.conda"]) == ["a-1.0-0.conda"]
    assert list(repodata["packages"]) == ["a-1.0-0.tar.bz2"]
    assert repodata["info"] == {"subdir": "linux-64"}


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("numpy-1.26.4-py311h64a7726_0.conda", True),
        ("_libgcc_mutex-0.1-main.tar.bz2", True),
        ("pkg-1.0+local-0.tar.bz2", True),
        ("repodata.json", False),
        (".hidden-1.0-0.conda", False),
        ("a/b-1.0-0.conda", False),
        ("..conda", False),
        ("a..b-1.0-0.conda", False),
        ("a-1.0-0.tar.gz", False),
        ("a-1.0-0.conda\n", False),
    ],
)
def test_is_package_filename(filename, expected):
    assert is_package_filename(filename) is expected
