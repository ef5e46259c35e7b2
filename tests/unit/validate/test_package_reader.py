from __future__ import annotations

import tarfile
from contextlib import closing

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.archive import ArchiveCheck
from mirror.validate.package_reader import (
    ArchiveError,
    ArchiveLimitError,
    ArchiveLimits,
    PackageReader,
)

from .builders import (
    HOSTILE_FORMATS,
    TarMember,
    demo_package,
    index_json,
    info_members,
    isolate_working_folder,
    payload,
    tar_bz2_bytes,
    write_package,
)


@pytest.fixture(autouse=True)
def no_stray_files(tmp_path, monkeypatch):
    yield from isolate_working_folder(tmp_path, monkeypatch)


def read_all(context, limits=None, components=("info", "pkg")):
    reader = PackageReader(context.path, context.filename, limits)
    found = {}
    with closing(reader.members(components)) as members:
        for member in members:
            content = b"".join(member.reader.chunks()) if member.reader is not None else None
            found[member.name] = (member.component, member.info.type, content)
    return reader, found


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_yields_both_components(tmp_path, fmt):
    link = TarMember("lib/libdemo.so.1", type=tarfile.SYMTYPE, linkname="libdemo.so")
    context = demo_package(tmp_path, fmt, extra_payload=[link])

    reader, found = read_all(context)

    assert found["info/index.json"][0] == "info"
    assert found["lib/libdemo.so"] == ("pkg", tarfile.REGTYPE, b"\x7fELF demo library")
    assert found["lib/libdemo.so.1"] == ("pkg", tarfile.SYMTYPE, None)
    assert reader.scan.members == len(found) + (3 if fmt == "conda" else 0)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_info_component_only(tmp_path, fmt):
    context = demo_package(tmp_path, fmt)

    _, found = read_all(context, components=("info",))

    assert found
    assert all(component == "info" for component, _, _ in found.values())
    assert "lib/libdemo.so" not in found


def test_reader_unknown_component(tmp_path):
    context = demo_package(tmp_path, "conda")

    with pytest.raises(ValueError, match="unknown package components"):
        next(PackageReader(context.path, context.filename).members(("payload",)))


def test_reader_read_whole_over_metadata_limit(tmp_path):
    context = demo_package(tmp_path, "tar.bz2", files={"lib/big": payload(70_000)})
    reader = PackageReader(context.path, context.filename, ArchiveLimits(max_metadata_bytes=65_536))

    with closing(reader.members()) as members:
        member = next(member for member in members if member.name == "lib/big")
        with pytest.raises(ArchiveLimitError, match="lib/big is 70000 bytes, over the 65536-byte limit"):
            member.reader.read()


def test_reader_truncated_member_named(tmp_path):
    data = tar_bz2_bytes([*info_members(index_json()), ("lib/big", payload(400_000))], compresslevel=1)
    context = write_package(tmp_path, "demo-1.0-h1234_0.tar.bz2", data[: len(data) * 3 // 4])

    with pytest.raises(ArchiveError, match="truncated or corrupt inside member 'lib/big' after"):
        read_all(context)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_long_segment_fails_archive(tmp_path, fmt):
    long_name = "lib/" + "a" * 300
    context = demo_package(tmp_path, fmt, extra_payload=[TarMember(long_name, b"x")])

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary.startswith("archive exceeds a limit")
    assert "has a 300-byte path segment, over the 255-byte limit" in result.summary
    assert result.evidence["max_segment_bytes"] == 255


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_long_path_fails_archive(tmp_path, fmt):
    long_name = "/".join(["d" * 200] * 25)  # 5024 bytes, every segment within 255
    context = demo_package(tmp_path, fmt, extra_payload=[TarMember(long_name, b"x")])

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "has a 5024-byte name, over the 4096-byte limit for a path" in result.summary


def test_reader_long_link_target_fails_archive(tmp_path):
    link = TarMember("lib/link", type=tarfile.SYMTYPE, linkname="a/" * 40)
    context = demo_package(tmp_path, "tar.bz2", extra_payload=[link])

    result = ArchiveCheck(ArchiveLimits(max_name_bytes=64)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "'lib/link' has a 80-byte link target, over the 64-byte limit" in result.summary


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_ratio_bomb_fails_archive(tmp_path, fmt):
    # 3 MB of zeros compress to a few kB in both formats.
    context = demo_package(tmp_path, fmt, files={"lib/zeros": bytes(3_000_000)})

    result = ArchiveCheck(ArchiveLimits(max_compression_ratio=20)).run(context)

    assert context.path.stat().st_size < 20_000
    assert result.outcome is CheckOutcome.FAIL
    assert "over the maximum compression ratio of 20" in result.summary
    assert result.evidence["max_compression_ratio"] == 20


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_ratio_bomb_stops_early(tmp_path, fmt):
    context = demo_package(tmp_path, fmt, files={"lib/zeros": bytes(20_000_000)})
    reader = PackageReader(context.path, context.filename, ArchiveLimits(max_compression_ratio=20))

    with pytest.raises(ArchiveLimitError, match="compression ratio"):
        read_all_from(reader)

    assert reader.scan.uncompressed_bytes < 5_000_000


def read_all_from(reader):
    with closing(reader.members()) as members:
        for member in members:
            if member.reader is not None:
                member.reader.drain()


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_reader_default_ratio_passes_package(tmp_path, fmt):
    context = demo_package(tmp_path, fmt, files={"lib/data": payload(1_100_000), "share/text": b"abc" * 1000})

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.PASS


def test_reader_limits_reject_zero_ratio():
    with pytest.raises(ValueError, match="max_compression_ratio must be positive"):
        ArchiveLimits(max_compression_ratio=0)


def test_reader_missing_index_conda_message(tmp_path):
    context = demo_package(tmp_path, "conda", replace_info={"info/index.json": None})

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "demo-1.0-0.conda: info-demo-1.0-0.tar.zst has no info/index.json"
