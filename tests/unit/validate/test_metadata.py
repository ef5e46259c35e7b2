from __future__ import annotations

import dataclasses
import json

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.metadata import MetadataCheck, parse_filename, subdir_of
from mirror.validate.result import CheckContext

from .builders import good_conda, good_tar_bz2, index_json, info_members, tar_bz2_bytes, write_package


@pytest.mark.parametrize("builder", [good_tar_bz2, good_conda], ids=["tar.bz2", "conda"])
def test_metadata_built_package_pass(tmp_path, builder):
    result = MetadataCheck().run(builder(tmp_path))

    assert result.outcome is CheckOutcome.PASS
    assert result.summary == "name, version, build, build_number and subdir match"
    assert result.evidence["hotfix_differences"] == {}


@pytest.mark.parametrize(
    ("field", "record_value"),
    [("name", "other"), ("version", "2.0"), ("build", "h9999_0"), ("build_number", 3)],
)
def test_metadata_record_identity_mismatch(tmp_path, field, record_value):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, record={**context.record, field: record_value})

    result = MetadataCheck().run(context)

    index_value = index_json()[field]
    assert result.outcome is CheckOutcome.FAIL
    assert result.summary.startswith(f"{field} differs: index.json {index_value!r}")
    assert f"record {record_value!r}" in result.summary
    assert result.evidence["mismatches"][field]["record"] == record_value


def test_metadata_filename_mismatch(tmp_path):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, filename="demo-1.1-h1234_0.tar.bz2")

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "version differs: index.json '1.0', file name '1.1', record '1.0'"


def test_metadata_index_json_mismatch_all_fields(tmp_path):
    # index.json of another package inside a file named and listed as demo-1.0-h1234_0.
    stored = index_json(name="evil", version="6.6", build="x_0")
    data = tar_bz2_bytes(info_members(stored))
    record = {**index_json(), "sha256": "0" * 64}
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data, record=record)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "name differs: index.json 'evil', file name 'demo', record 'demo'" in result.summary
    assert "version differs: index.json '6.6'" in result.summary
    assert "build differs: index.json 'x_0'" in result.summary
    assert set(result.evidence["mismatches"]) == {"name", "version", "build"}


def test_metadata_noarch_listed_in_arch_subdir(tmp_path):
    context = good_tar_bz2(tmp_path, subdir="noarch", noarch="generic")
    context = dataclasses.replace(context, subdir="linux-64")

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "subdir differs: index.json 'noarch', listed in 'linux-64', record 'noarch'"


def test_metadata_record_subdir_differs_from_listing(tmp_path):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, subdir="osx-64", record={**context.record, "subdir": "osx-64"})

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "subdir differs: index.json 'linux-64', listed in 'osx-64', record 'osx-64'"


def test_metadata_hotfix_reported_as_pass(tmp_path):
    context = good_tar_bz2(tmp_path)
    record = {**context.record, "depends": ["libc >=2.17", "openssl <3"], "license": "MIT"}
    context = dataclasses.replace(context, record=record)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.summary.endswith("upstream hotfix differs from index.json in: depends, license")
    assert result.evidence["hotfix_differences"]["depends"] == {
        "record": ["libc >=2.17", "openssl <3"],
        "index.json": ["libc >=2.17"],
    }


def test_metadata_hotfix_ignores_order_and_spelling(tmp_path):
    context = good_tar_bz2(tmp_path, depends=["b", "a"], track_features="f1 f2")
    record = {**context.record, "depends": ["a", "b"], "track_features": ["f2", "f1"], "constrains": []}
    context = dataclasses.replace(context, record=record)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["hotfix_differences"] == {}


def test_metadata_missing_index_json(tmp_path):
    data = tar_bz2_bytes([("info/files", b"")])
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data, index=index_json())

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "cannot read info/index.json: demo-1.0-h1234_0.tar.bz2 has no info/index.json"


@pytest.mark.parametrize(("content", "reason"), [(b"[1, 2]", "is a JSON list"), (b"{oops", "is not valid JSON")])
def test_metadata_index_json_not_object(tmp_path, content, reason):
    data = tar_bz2_bytes([("info/index.json", content)])
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data, index=index_json())

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert reason in result.summary


def test_metadata_index_json_missing_name(tmp_path):
    index = index_json()
    del index["name"]
    data = tar_bz2_bytes(info_members(index))
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data, record=index_json())

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "name differs: index.json None, file name 'demo'" in result.summary


def test_metadata_unknown_subdir_warns(tmp_path):
    index = index_json(platform="linux")
    del index["subdir"]
    data = tar_bz2_bytes(info_members(index))
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data, record=index_json())

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.WARN
    assert "subdir cannot be compared" in result.summary


def test_metadata_bad_filename(tmp_path):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, filename="demo.tar.bz2")

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is not <name>-<version>-<build>.tar.bz2" in result.summary


def test_parse_filename_hyphenated_name():
    assert parse_filename("conda-index-pkg-a-1.0-py27h5e241af_0.conda") == {
        "name": "conda-index-pkg-a",
        "version": "1.0",
        "build": "py27h5e241af_0",
    }


@pytest.mark.parametrize(
    ("index", "subdir"),
    [
        ({"subdir": "linux-aarch64"}, "linux-aarch64"),
        ({"platform": "osx", "arch": "x86_64"}, "osx-64"),
        ({"platform": "win", "arch": "x86"}, "win-32"),
        ({"platform": "linux", "arch": "ppc64le"}, "linux-ppc64le"),
        ({"platform": None, "arch": None}, "noarch"),
        ({"platform": "linux", "arch": None}, None),
    ],
    ids=["declared", "osx-64", "win-32", "ppc64le", "noarch", "incomplete"],
)
def test_subdir_of_legacy_index(index, subdir):
    assert subdir_of(index)[0] == subdir


def test_metadata_corpus_hotfix_depends(corpus_context):
    # The corpus repodata carries the package's own depends, so a copy of
    # the real record gets the edit an upstream hotfix would make.
    context = corpus_context("channels/conda-index-hotfix/osx-64/hotfix_depends_test-1.0-dummy_0.tar.bz2")
    hotfixed = {**context.record, "depends": ["zlib >=1.2.13,<1.3.0a0"]}
    context = dataclasses.replace(context, record=hotfixed)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert "upstream hotfix differs from index.json in: depends" in result.summary
    assert result.evidence["hotfix_differences"]["depends"] == {
        "record": ["zlib >=1.2.13,<1.3.0a0"],
        "index.json": ["zlib"],
    }


def test_metadata_corpus_mismatched_arch(corpus_context):
    context = corpus_context("edge/mismatched-arch-channel/linux-64/test-package-1.0.0-0.tar.bz2")

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "subdir differs: index.json 'noarch', listed in 'linux-64', record 'noarch'"


def test_metadata_corpus_legacy_index_without_subdir(corpus):
    # A 2015 package whose index.json has platform/arch but no subdir.
    path = corpus / "packages/nano-2.4.1-0.tar.bz2"
    record = {"name": "nano", "version": "2.4.1", "build": "0", "build_number": 0, "subdir": "osx-64"}
    context = CheckContext(path=path, filename=path.name, subdir="osx-64", record=record)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["subdir_source"] == "index.json platform and arch"
    assert json.dumps(result.evidence)
