"""Tests of publish_channel: link order, atomic indexes, grace-period removal."""

from __future__ import annotations

import bz2
import json
import os
import shutil
from pathlib import Path

import pytest
import zstandard

from mirror.publish import PublishedFile, PublishError, publish_channel
from mirror.publish.state import STATE_FILENAME
from mirror.store.filesystem import FilesystemBlobStore

from .helpers import (
    ANACONDA_MAIN_NOARCH,
    CORPUS,
    RecordingLinker,
    fake_sha256,
    filename_of,
    load_json,
    make_record,
    published,
)

INDEX_NAMES = ("repodata.json", "repodata.json.zst", "repodata.json.bz2", "current_repodata.json")


def snapshot(channel_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Return relative path -> (bytes, mtime in ns) of every file under the channel folder."""
    result = {}
    for path in sorted(channel_dir.rglob("*")):
        if path.is_file():
            result[path.relative_to(channel_dir).as_posix()] = (
                path.read_bytes(),
                path.stat().st_mtime_ns,
            )
    return result


def test_republish_writes_nothing(channel_dir, linker):
    files = {"noarch": published(make_record("a", "1.0"), make_record("b", "2.0"))}
    publish_channel(channel_dir, files, linker, all_subdirs=["linux-64"], now=1000)
    before = snapshot(channel_dir)

    report = publish_channel(channel_dir, files, linker, all_subdirs=["linux-64"], now=2000)

    assert report.changed_files == []
    assert report.linked == 0
    assert report.removed == 0
    assert not report.changed
    assert snapshot(channel_dir) == before


def test_republish_identical_bytes_fresh_folder(tmp_path, linker):
    records = load_json(ANACONDA_MAIN_NOARCH)["packages"]
    files = {
        "noarch": {
            name: PublishedFile(record, record["sha256"]) for name, record in records.items()
        }
    }

    publish_channel(tmp_path / "first", files, linker, all_subdirs=["linux-64"], now=1)
    publish_channel(tmp_path / "second", files, RecordingLinker(), all_subdirs=["linux-64"], now=2)

    for name in (*[f"noarch/{index}" for index in INDEX_NAMES], "channeldata.json"):
        assert (tmp_path / "first" / name).read_bytes() == (
            tmp_path / "second" / name
        ).read_bytes(), name


def test_noarch_skeleton_always_published(channel_dir, linker):
    report = publish_channel(channel_dir, {}, linker, all_subdirs=[])

    assert load_json(channel_dir / "noarch/repodata.json") == {
        "info": {"subdir": "noarch"},
        "packages": {},
        "packages.conda": {},
        "removed": [],
        "repodata_version": 1,
    }
    assert load_json(channel_dir / "noarch/current_repodata.json")["packages"] == {}
    assert load_json(channel_dir / "channeldata.json") == {
        "channeldata_version": 1,
        "packages": {},
        "subdirs": ["noarch"],
    }
    assert sorted(report.changed_files) == sorted(
        ["channeldata.json", *[f"noarch/{index}" for index in INDEX_NAMES]]
    )


def test_empty_subdir_gets_index(channel_dir, linker):
    files = {"noarch": published(make_record("a", "1.0"))}

    publish_channel(channel_dir, files, linker, all_subdirs=["linux-64", "win-64"])

    for subdir in ("linux-64", "win-64"):
        repodata = load_json(channel_dir / subdir / "repodata.json")
        assert repodata["info"] == {"subdir": subdir}
        assert repodata["packages"] == {}
        assert repodata["packages.conda"] == {}
    assert load_json(channel_dir / "channeldata.json")["subdirs"] == [
        "linux-64",
        "noarch",
        "win-64",
    ]


def test_both_formats_in_own_keys(channel_dir, linker):
    record = make_record("a", "1.0")
    files = {
        "noarch": {**published(record, suffix=".conda"), **published(record, suffix=".tar.bz2")}
    }

    publish_channel(channel_dir, files, linker, all_subdirs=[])

    repodata = load_json(channel_dir / "noarch/repodata.json")
    assert list(repodata["packages.conda"]) == ["a-1.0-0.conda"]
    assert list(repodata["packages"]) == ["a-1.0-0.tar.bz2"]
    assert (channel_dir / "noarch/a-1.0-0.conda").is_file()
    assert (channel_dir / "noarch/a-1.0-0.tar.bz2").is_file()


def test_compressed_forms_decode_to_json(channel_dir, linker):
    records = load_json(ANACONDA_MAIN_NOARCH)["packages"]
    files = {
        "noarch": {
            name: PublishedFile(record, record["sha256"]) for name, record in records.items()
        }
    }

    publish_channel(channel_dir, files, linker, all_subdirs=[])

    plain = (channel_dir / "noarch/repodata.json").read_bytes()
    assert (
        zstandard.ZstdDecompressor().decompress(
            (channel_dir / "noarch/repodata.json.zst").read_bytes()
        )
        == plain
    )
    assert bz2.decompress((channel_dir / "noarch/repodata.json.bz2").read_bytes()) == plain


def test_corpus_records_published_verbatim(channel_dir, linker):
    upstream = load_json(ANACONDA_MAIN_NOARCH)["packages"]
    files = {
        "noarch": {
            name: PublishedFile(record, record["sha256"]) for name, record in upstream.items()
        }
    }

    publish_channel(channel_dir, files, linker, all_subdirs=[])

    repodata = load_json(channel_dir / "noarch/repodata.json")
    assert repodata["packages"] == upstream
    assert repodata["packages.conda"] == {}
    assert any("namespace" in record for record in repodata["packages"].values())


def test_hotfix_field_survives_url_dropped(channel_dir, linker):
    record = make_record(
        "a",
        "1.0",
        license="MIT",
        x_hotfix={"reason": "bad constrains", "patched": True},
        url="https://upstream.example/noarch/a-1.0-0.tar.bz2",
        channel="https://upstream.example",
        fn="a-1.0-0.tar.bz2",
    )
    files = {"noarch": published(record)}

    publish_channel(channel_dir, files, linker, all_subdirs=[])

    full = load_json(channel_dir / "noarch/repodata.json")["packages"]["a-1.0-0.tar.bz2"]
    current = load_json(channel_dir / "noarch/current_repodata.json")["packages"]["a-1.0-0.tar.bz2"]
    expected = {key: value for key, value in record.items() if key not in ("url", "channel")}
    assert full == expected
    assert current == expected
    assert b"upstream.example" not in (channel_dir / "noarch/repodata.json").read_bytes()


def test_current_record_bytes_match_full(channel_dir, linker):
    record = make_record(
        "a", "1.0", license="BSD", depends=["python >=3.8"], timestamp=1700000000000
    )
    files = {"noarch": published(record)}

    publish_channel(channel_dir, files, linker, all_subdirs=[])

    rendered = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert rendered in (channel_dir / "noarch/repodata.json").read_bytes()
    assert rendered in (channel_dir / "noarch/current_repodata.json").read_bytes()


def test_index_written_after_links(channel_dir):
    first = published(make_record("a", "1.0"))
    second = {**first, **published(make_record("b", "1.0"))}
    index = channel_dir / "noarch/repodata.json"
    seen_in_index: list[bool] = []

    def link(sha256: str, destination: Path) -> None:
        seen_in_index.append(index.exists() and destination.name in load_json(index)["packages"])
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(sha256)

    publish_channel(channel_dir, {"noarch": first}, link, all_subdirs=[])
    publish_channel(channel_dir, {"noarch": second}, link, all_subdirs=[])

    assert seen_in_index == [False, False]
    assert "b-1.0-0.tar.bz2" in load_json(index)["packages"]


def test_link_failure_leaves_old_index(channel_dir, linker):
    publish_channel(
        channel_dir, {"noarch": published(make_record("a", "1.0"))}, linker, all_subdirs=[]
    )
    before = (channel_dir / "noarch/repodata.json").read_bytes()

    def failing_link(sha256: str, destination: Path) -> None:
        raise OSError(f"no space left for {destination.name}")

    with pytest.raises(OSError):
        publish_channel(
            channel_dir,
            {"noarch": published(make_record("b", "1.0"))},
            failing_link,
            all_subdirs=[],
        )

    assert (channel_dir / "noarch/repodata.json").read_bytes() == before
    assert (channel_dir / "noarch/a-1.0-0.tar.bz2").is_file()


def test_removal_waits_grace_period(channel_dir, linker):
    keep, drop = make_record("a", "1.0"), make_record("b", "1.0")
    dropped_file = channel_dir / "noarch" / filename_of(drop)
    publish_channel(
        channel_dir, {"noarch": published(keep, drop)}, linker, all_subdirs=[], now=1000
    )

    left = publish_channel(
        channel_dir, {"noarch": published(keep)}, linker, all_subdirs=[], now=1010
    )
    assert "b-1.0-0.tar.bz2" not in load_json(channel_dir / "noarch/repodata.json")["packages"]
    assert dropped_file.is_file()
    assert left.pending_removal == 1
    assert left.removed == 0

    waiting = publish_channel(
        channel_dir, {"noarch": published(keep)}, linker, all_subdirs=[], now=1010 + 3599
    )
    assert dropped_file.is_file()
    assert waiting.pending_removal == 1

    removal = publish_channel(
        channel_dir, {"noarch": published(keep)}, linker, all_subdirs=[], now=1010 + 3600
    )
    assert not dropped_file.exists()
    assert removal.removed == 1
    assert removal.pending_removal == 0
    assert (channel_dir / "noarch" / filename_of(keep)).is_file()


def test_removal_grace_zero_immediate(channel_dir, linker):
    drop = make_record("b", "1.0")
    publish_channel(channel_dir, {"noarch": published(drop)}, linker, all_subdirs=[], now=1000)

    report = publish_channel(
        channel_dir, {}, linker, all_subdirs=[], removal_grace_seconds=0, now=1000
    )

    assert report.removed == 1
    assert not (channel_dir / "noarch" / filename_of(drop)).exists()


def test_removal_clock_restarts_on_return(channel_dir, linker):
    record = make_record("b", "1.0")
    path = channel_dir / "noarch" / filename_of(record)
    publish_channel(channel_dir, {"noarch": published(record)}, linker, all_subdirs=[], now=0)
    publish_channel(channel_dir, {}, linker, all_subdirs=[], now=10)
    publish_channel(channel_dir, {"noarch": published(record)}, linker, all_subdirs=[], now=20)
    publish_channel(channel_dir, {}, linker, all_subdirs=[], now=3000)

    report = publish_channel(channel_dir, {}, linker, all_subdirs=[], now=3700)

    assert path.is_file()
    assert report.pending_removal == 1


def test_removal_spares_foreign_files(channel_dir, linker):
    drop = make_record("b", "1.0")
    publish_channel(channel_dir, {"noarch": published(drop)}, linker, all_subdirs=[], now=0)
    foreign_package = channel_dir / "noarch/foreign-1.0-0.conda"
    notes = channel_dir / "noarch/notes.txt"
    foreign_package.write_bytes(b"placed by an operator")
    notes.write_text("keep me")

    report = publish_channel(
        channel_dir, {}, linker, all_subdirs=[], removal_grace_seconds=0, now=10
    )

    assert report.removed == 1
    assert foreign_package.read_bytes() == b"placed by an operator"
    assert notes.read_text() == "keep me"


def test_corrupt_state_deletes_nothing(channel_dir, linker):
    drop = make_record("b", "1.0")
    publish_channel(channel_dir, {"noarch": published(drop)}, linker, all_subdirs=[], now=0)
    (channel_dir / STATE_FILENAME).write_text("{not json")

    report = publish_channel(
        channel_dir, {}, linker, all_subdirs=[], removal_grace_seconds=0, now=10
    )

    assert report.removed == 0
    assert (channel_dir / "noarch" / filename_of(drop)).is_file()


def test_retired_subdir_index_deleted(channel_dir, linker):
    record = make_record("a", "1.0", subdir="linux-64")
    publish_channel(
        channel_dir, {"linux-64": published(record)}, linker, all_subdirs=["linux-64"], now=0
    )

    report = publish_channel(channel_dir, {}, linker, all_subdirs=[], now=10)

    for index in INDEX_NAMES:
        assert not (channel_dir / "linux-64" / index).exists()
        assert f"linux-64/{index}" in report.changed_files
    assert (channel_dir / "linux-64" / filename_of(record)).is_file()
    assert report.pending_removal == 1
    assert load_json(channel_dir / "channeldata.json")["subdirs"] == ["noarch"]


def test_changed_sha256_relinks(channel_dir, linker):
    record = make_record("a", "1.0")
    filename = filename_of(record)
    publish_channel(channel_dir, {"noarch": published(record)}, linker, all_subdirs=[])

    replaced = {filename: PublishedFile(record, fake_sha256("rebuilt"))}
    report = publish_channel(channel_dir, {"noarch": replaced}, linker, all_subdirs=[])

    assert report.linked == 1
    assert (channel_dir / "noarch" / filename).read_text() == fake_sha256("rebuilt")


def test_record_sha256_mismatch_rejected(channel_dir, linker):
    record = make_record("a", "1.0", sha256=fake_sha256("other"))
    files = {"noarch": {filename_of(record): PublishedFile(record, fake_sha256("blob"))}}

    with pytest.raises(PublishError, match="differs from the blob"):
        publish_channel(channel_dir, files, linker, all_subdirs=[])
    assert linker.calls == []


@pytest.mark.parametrize(
    "filename",
    [
        "../a-1.0-0.conda",
        "sub/a-1.0-0.conda",
        ".a-1.0-0.conda",
        "a-1.0-0.zip",
        "a..b-1.0-0.conda",
        "a\\b.conda",
    ],
    ids=["parent", "separator", "hidden", "suffix", "dotdot", "backslash"],
)
def test_bad_filename_rejected(channel_dir, linker, filename):
    files = {"noarch": {filename: PublishedFile(make_record("a", "1.0"), fake_sha256(filename))}}

    with pytest.raises(PublishError, match="not a package file name"):
        publish_channel(channel_dir, files, linker, all_subdirs=[])
    assert linker.calls == []
    assert not channel_dir.exists()


def test_bad_subdir_rejected(channel_dir, linker):
    with pytest.raises(PublishError, match="not a conda subdir"):
        publish_channel(channel_dir, {}, linker, all_subdirs=["../etc"])


def test_real_store_hard_links(tmp_path, channel_dir):
    source = CORPUS / "channels/conda-format-repo/linux-64/zlib-1.2.11-h7b6447c_3.conda"
    record = load_json(CORPUS / "channels/conda-format-repo/linux-64/repodata.json")[
        "packages.conda"
    ][source.name]
    store = FilesystemBlobStore(tmp_path / "store")
    incoming = tmp_path / "incoming.conda"
    shutil.copyfile(source, incoming)
    store.add_verified_file(incoming, record["sha256"])

    publish_channel(
        channel_dir,
        {"linux-64": {source.name: PublishedFile(record, record["sha256"])}},
        store.link,
        all_subdirs=["linux-64"],
    )

    published_path = channel_dir / "linux-64" / source.name
    assert os.path.samefile(published_path, store.path_for(record["sha256"]))
    assert (
        load_json(channel_dir / "linux-64/repodata.json")["packages.conda"][source.name] == record
    )
