"""Tests of mirror.validate.quarantine: the local channel of candidate package files."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path

import pytest
import rattler

from mirror.demo.channel import record_for
from mirror.demo.packages import PackageSpec, build_package
from mirror.validate.quarantine import QuarantineFile, build_quarantine_channel


def candidate(blobs: Path, spec: PackageSpec, fmt: str = "conda") -> QuarantineFile:
    """Build a package as a blob named like a store blob (by content, not by package name)."""
    built = build_package(spec, blobs / "build", fmt)
    record = record_for(built)
    blob = blobs / record["sha256"]
    built.rename(blob)
    return QuarantineFile(spec.subdir, built.name, record, blob)


@pytest.fixture
def files(tmp_path):
    blobs = tmp_path / "blobs"
    return [
        candidate(blobs, PackageSpec("libdemo", "1.0", subdir="linux-64", files={"lib/a.txt": b"a"})),
        candidate(blobs, PackageSpec("libdemo", "1.0", subdir="linux-64", files={"lib/a.txt": b"a"}), "tar.bz2"),
        candidate(blobs, PackageSpec("data", "2.0", files={"share/d.txt": b"d"})),
    ]


def repodata(root: Path, subdir: str) -> dict:
    return json.loads((root / subdir / "repodata.json").read_text())


def test_quarantine_repodata_verbatim(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files)

    linux = repodata(root, "linux-64")
    assert linux["info"] == {"subdir": "linux-64"}
    assert linux["packages"] == {"libdemo-1.0-0.tar.bz2": files[1].record}
    assert linux["packages.conda"] == {"libdemo-1.0-0.conda": files[0].record}
    assert repodata(root, "noarch")["packages.conda"] == {"data-2.0-0.conda": files[2].record}


def test_quarantine_hard_links(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files)

    for item in files:
        linked = root / item.subdir / item.filename
        assert linked.samefile(item.blob_path)
        assert not linked.is_symlink()


def test_quarantine_noarch_always(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files[:1])

    noarch = repodata(root, "noarch")
    assert noarch["packages"] == {}
    assert noarch["packages.conda"] == {}


def test_quarantine_rebuild_unchanged(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files)
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*")}

    build_quarantine_channel(tmp_path / "q", files)

    after = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
    assert after == before


def test_quarantine_rebuild_drops_unlisted(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files)

    build_quarantine_channel(tmp_path / "q", files[2:])

    assert repodata(root, "linux-64")["packages.conda"] == {}
    assert repodata(root, "linux-64")["packages"] == {}
    assert sorted(path.name for path in (root / "linux-64").iterdir()) == ["repodata.json"]
    assert (root / "noarch" / "data-2.0-0.conda").is_file()


def test_quarantine_symlink_fallback(tmp_path, files, monkeypatch):
    def cross_device(source, destination):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)

    root = build_quarantine_channel(tmp_path / "q", files)

    linked = root / "linux-64" / "libdemo-1.0-0.conda"
    assert linked.is_symlink()
    assert linked.resolve() == files[0].blob_path.resolve()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("filename", "../escape.conda", "invalid package file name"),
        ("filename", "notes.txt", "invalid package file name"),
        ("subdir", "../linux-64", "invalid subdir"),
    ],
    ids=["traversal", "extension", "subdir"],
)
def test_quarantine_invalid_names(tmp_path, files, field, value, message):
    item = files[0]
    bad = dataclasses.replace(item, **{field: value})

    with pytest.raises(ValueError, match=message):
        build_quarantine_channel(tmp_path / "q", [bad])
    assert not (tmp_path / "escape.conda").exists()


def test_quarantine_missing_blob(tmp_path, files):
    missing = QuarantineFile("noarch", "gone-1.0-0.conda", {"name": "gone"}, tmp_path / "nothing")

    with pytest.raises(FileNotFoundError, match="gone-1.0-0.conda"):
        build_quarantine_channel(tmp_path / "q", [missing])


def test_quarantine_conflicting_records(tmp_path, files):
    other = QuarantineFile(files[0].subdir, files[0].filename, {**files[0].record, "depends": ["x"]}, files[0].blob_path)

    with pytest.raises(ValueError, match="given twice with different records"):
        build_quarantine_channel(tmp_path / "q", [files[0], other])


@pytest.mark.real_component
async def test_quarantine_solvable_by_rattler(tmp_path, files):
    root = build_quarantine_channel(tmp_path / "q", files)

    records = await rattler.solve(
        sources=[root.as_uri()],
        specs=["libdemo ==1.0 0", "data"],
        gateway=rattler.Gateway(cache_dir=tmp_path / "cache"),
        platforms=["linux-64", "noarch"],
        virtual_packages=[],
    )

    assert sorted(record.file_name for record in records) == ["data-2.0-0.conda", "libdemo-1.0-0.conda"]
