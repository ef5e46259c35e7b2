"""The default checks against real packages and real broken files from the shared corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conda_package_streaming.package_streaming import stream_conda_info

from mirror.catalog.models import CheckOutcome
from mirror.validate import CheckContext, default_checks, run_checks

from tests.support.corpus import CORPUS_DIR

from .builders import repodata_records


def channel_packages() -> list[str]:
    """List every corpus channel file that has a record in the repodata.json next to it."""
    found = []
    for repodata in sorted(CORPUS_DIR.glob("channels/*/*/repodata.json")):
        for filename in sorted(repodata_records(repodata)):
            if (repodata.parent / filename).is_file():
                found.append(str((repodata.parent / filename).relative_to(CORPUS_DIR)))
    return found


CHANNEL_PACKAGES = channel_packages()
STANDALONE_PACKAGES = sorted(path.name for path in (CORPUS_DIR / "packages").glob("*") if path.is_file())


def hashes_of(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


def indexer_record(path: Path) -> dict[str, object]:
    """Build the record an indexer writes: info/index.json plus size and hashes.

    The standalone packages have no repodata.json next to them, so this
    record replaces one. It reads index.json with conda-package-streaming,
    not with the code under test.
    """
    with path.open("rb") as stream:
        for tar, member in stream_conda_info(path.name, stream):
            if member.name == "info/index.json":
                index = json.load(tar.extractfile(member))
                break
    return {**index, **hashes_of(path)}


def run_all(context: CheckContext) -> dict[str, object]:
    return {check.name: result for check, result in run_checks(context, default_checks())}


def test_corpus_has_both_formats(corpus):
    assert any(name.endswith(".conda") for name in CHANNEL_PACKAGES)
    assert any(name.endswith(".tar.bz2") for name in CHANNEL_PACKAGES)
    assert "channels/conda-format-repo/linux-64/zlib-1.2.11-h7b6447c_3.conda" in CHANNEL_PACKAGES
    assert "channels/conda-format-repo/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2" in CHANNEL_PACKAGES


@pytest.mark.parametrize("relative_path", CHANNEL_PACKAGES)
def test_corpus_channel_package_passes(corpus_context, relative_path):
    results = run_all(corpus_context(relative_path))

    assert list(results) == ["integrity", "archive", "metadata"]
    for name, result in results.items():
        assert result.outcome is CheckOutcome.PASS, f"{name}: {result.summary}"


@pytest.mark.parametrize("filename", STANDALONE_PACKAGES)
def test_corpus_standalone_package_passes(corpus, filename):
    path = corpus / "packages" / filename
    record = indexer_record(path)
    subdir = record.get("subdir") or "osx-64"  # nano-2.4.1-0 predates the subdir field
    context = CheckContext(path=path, filename=filename, subdir=subdir, record=record)

    results = run_all(context)

    for name, result in results.items():
        assert result.outcome is CheckOutcome.PASS, f"{name}: {result.summary}"


def test_corpus_flask_real_md5_record(corpus):
    # The one standalone package that a corpus repodata lists, with md5 but no sha256.
    record = repodata_records(corpus / "repodata/conda-test/noarch/repodata.json")["flask-0.11.1-py_0.tar.bz2"]
    path = corpus / "packages/flask-0.11.1-py_0.tar.bz2"
    context = CheckContext(path=path, filename=path.name, subdir="noarch", record=record)

    results = run_all(context)

    assert results["integrity"].evidence["compared"] == ["md5", "size"]
    for name, result in results.items():
        assert result.outcome is CheckOutcome.PASS, f"{name}: {result.summary}"


@pytest.mark.parametrize(
    ("relative_path", "reason"),
    [
        ("edge/wrong-compression/nano-2.4.1-0.tar.bz2", "is gzip data, not bzip2 data"),
        ("edge/uncompressed-tar/flask-0.11.1-py_0.tar.bz2", "is a plain (uncompressed) tar archive"),
        ("edge/conda-index-corrupt-channel/noarch/bad_package.tar.bz2", "is unrecognised data"),
        ("edge/conda-index-corrupt-channel/noarch/another_bad_package.conda", "is an empty file"),
    ],
    ids=["gzip", "plain-tar", "text", "empty-conda"],
)
def test_corpus_edge_file_fails_archive(corpus, relative_path, reason):
    # The record matches the bytes, so integrity passes and the archive check decides.
    path = corpus / relative_path
    context = CheckContext(path=path, filename=path.name, subdir=path.parent.name, record=hashes_of(path))

    results = run_all(context)

    assert results["integrity"].outcome is CheckOutcome.PASS
    assert results["archive"].outcome is CheckOutcome.FAIL
    assert reason in results["archive"].summary
    assert results["metadata"].outcome is CheckOutcome.FAIL


def test_corpus_mismatched_arch_fails_metadata(corpus_context):
    results = run_all(corpus_context("edge/mismatched-arch-channel/linux-64/test-package-1.0.0-0.tar.bz2"))

    assert results["integrity"].outcome is CheckOutcome.PASS
    assert results["archive"].outcome is CheckOutcome.PASS
    assert results["metadata"].outcome is CheckOutcome.FAIL
    assert "index.json 'noarch', listed in 'linux-64'" in results["metadata"].summary
