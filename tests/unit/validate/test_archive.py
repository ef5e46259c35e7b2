from __future__ import annotations

import bz2
import gzip
import io
import json
import zipfile

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.errors import StoreError
from mirror.validate.checks.archive import ArchiveCheck, ArchiveError, ArchiveLimits, read_index_json
from mirror.validate.result import CheckContext

from .builders import (
    conda_entries,
    good_conda,
    good_tar_bz2,
    index_json,
    info_members,
    payload,
    pkg_members,
    tar_bytes,
    tar_bz2_bytes,
    write_package,
    zip_bytes,
    zstd_bytes,
)

STEM = "demo-1.0-h1234_0"


def conda_file(tmp_path, entries):
    return write_package(tmp_path, f"{STEM}.conda", zip_bytes(entries))


def default_entries(pkg=None):
    return conda_entries(STEM, info_members(index_json()), pkg or pkg_members())


@pytest.mark.parametrize("builder", [good_tar_bz2, good_conda], ids=["tar.bz2", "conda"])
def test_archive_built_package_pass(tmp_path, builder):
    result = ArchiveCheck().run(builder(tmp_path))

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["members"] >= 3
    assert result.evidence["uncompressed_bytes"] > 0


def test_archive_conda_evidence(tmp_path):
    result = ArchiveCheck().run(good_conda(tmp_path))

    assert result.evidence["format"] == "conda"
    assert result.evidence["conda_pkg_format_version"] == 2
    assert result.evidence["components"]["info"]["members"] == 2
    assert result.evidence["components"]["pkg"]["members"] == 1


def test_archive_plain_tar_named_bz2(tmp_path):
    data = tar_bytes([*info_members(index_json()), *pkg_members()])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is a plain (uncompressed) tar archive, not bzip2 data" in result.summary


def test_archive_gzip_named_bz2(tmp_path):
    data = gzip.compress(tar_bytes([*info_members(index_json()), *pkg_members()]))
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is gzip data, not bzip2 data" in result.summary


def test_archive_zip_named_bz2(tmp_path):
    context = write_package(tmp_path, f"{STEM}.tar.bz2", zip_bytes(default_entries()))

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is a zip archive, not bzip2 data" in result.summary


def test_archive_bzip2_named_conda(tmp_path):
    data = tar_bz2_bytes(info_members(index_json()))
    context = write_package(tmp_path, f"{STEM}.conda", data)

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is bzip2 data, not a zip archive" in result.summary


def test_archive_tar_bz2_cut_in_half(tmp_path):
    # compresslevel=1 makes 100 kB bzip2 blocks, so the cut falls after
    # some complete blocks, inside the large member.
    members = [*info_members(index_json()), ("lib/libdemo.so", payload(400_000))]
    data = tar_bz2_bytes(members, compresslevel=1)
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data[: len(data) // 2])

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is truncated or corrupt inside member 'lib/libdemo.so' after" in result.summary
    assert "of 400000 bytes" in result.summary


def test_archive_tar_bz2_cut_at_end(tmp_path):
    data = tar_bz2_bytes([*info_members(index_json()), *pkg_members()])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data[:-8])

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is truncated or corrupt" in result.summary
    assert "end-of-stream marker" in result.summary


def test_archive_missing_index_json_tar_bz2(tmp_path):
    data = tar_bz2_bytes([("info/files", b"lib/libdemo.so\n"), *pkg_members()])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == f"{STEM}.tar.bz2 has no info/index.json; every conda package must contain one"


def test_archive_missing_index_json_conda(tmp_path):
    entries = conda_entries(STEM, [("info/files", b"lib/libdemo.so\n")], pkg_members())

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert f"info-{STEM}.tar.zst has no info/index.json" in result.summary


def test_archive_duplicate_index_json(tmp_path):
    index = json.dumps(index_json()).encode()
    data = tar_bz2_bytes([("info/index.json", index), ("info/index.json", index)])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "more than one info/index.json" in result.summary


def test_archive_conda_without_info_component(tmp_path):
    entries = default_entries()
    del entries[f"info-{STEM}.tar.zst"]

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert f"lacks info-{STEM}.tar.zst" in result.summary


def test_archive_conda_without_metadata_json(tmp_path):
    entries = default_entries()
    del entries["metadata.json"]

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert "lacks metadata.json" in result.summary


def test_archive_conda_metadata_json_invalid(tmp_path):
    entries = {**default_entries(), "metadata.json": b"{not json"}

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert "metadata.json is unreadable or not valid JSON" in result.summary


def test_archive_conda_pkg_not_zstd(tmp_path):
    entries = default_entries()
    entries[f"pkg-{STEM}.tar.zst"] = bz2.compress(tar_bytes(pkg_members()))

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert f"pkg-{STEM}.tar.zst is bzip2 data, not zstd data" in result.summary


def test_archive_conda_pkg_zstd_truncated(tmp_path):
    entries = default_entries(pkg=[("lib/libdemo.so", payload(300_000))])
    pkg_name = f"pkg-{STEM}.tar.zst"
    entries[pkg_name] = entries[pkg_name][: len(entries[pkg_name]) // 2]

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert f"{pkg_name} is truncated or corrupt inside member 'lib/libdemo.so'" in result.summary


def test_archive_conda_zip_truncated(tmp_path):
    data = zip_bytes(default_entries())
    context = write_package(tmp_path, f"{STEM}.conda", data[: len(data) - 30])

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is not a readable zip archive" in result.summary


def test_archive_conda_extra_entry_warns(tmp_path):
    entries = {**default_entries(), "payload.sh": b"echo hidden"}

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.WARN
    assert "payload.sh" in result.summary
    assert result.evidence["extra_entries"] == ["payload.sh"]


def test_archive_unsupported_extension(tmp_path):
    context = write_package(tmp_path, f"{STEM}.tar.gz", b"\x1f\x8b")

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "unsupported extension" in result.summary


def test_archive_bomb_total_bytes(tmp_path):
    # 4 MB of zeros compress to under 10 kB, the shape of a decompression bomb.
    data = tar_bz2_bytes([*info_members(index_json()), ("lib/zeros", bytes(4_000_000))])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck(ArchiveLimits(max_total_bytes=1_000_000)).run(context)

    assert len(data) < 10_000
    assert result.outcome is CheckOutcome.FAIL
    assert "archive exceeds a limit" in result.summary
    assert "'lib/zeros' declares 4000000 bytes" in result.summary
    assert result.evidence["max_total_bytes"] == 1_000_000


def test_archive_bomb_total_bytes_conda(tmp_path):
    pkg = [(f"lib/zeros{i}", bytes(400_000)) for i in range(5)]
    context = conda_file(tmp_path, default_entries(pkg=pkg))

    result = ArchiveCheck(ArchiveLimits(max_total_bytes=1_000_000)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "archive exceeds a limit" in result.summary
    assert f"pkg-{STEM}.tar.zst" in result.summary


def test_archive_bomb_member_count(tmp_path):
    members = [*info_members(index_json()), *((f"lib/f{i}", b"") for i in range(50))]
    context = write_package(tmp_path, f"{STEM}.tar.bz2", tar_bz2_bytes(members))

    result = ArchiveCheck(ArchiveLimits(max_members=10)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "more than 10 members" in result.summary


def test_archive_bomb_pax_header(tmp_path):
    members = [*info_members(index_json()), *pkg_members()]
    data = tar_bz2_bytes(members, pax_headers={"lib/libdemo.so": {"comment": "A" * 2_000_000}})
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck(ArchiveLimits(max_metadata_bytes=65_536)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "over 65536 bytes of tar header data" in result.summary


def test_archive_index_json_over_metadata_limit(tmp_path):
    index = index_json(about="x" * 100_000)
    context = write_package(tmp_path, f"{STEM}.tar.bz2", tar_bz2_bytes(info_members(index)))

    result = ArchiveCheck(ArchiveLimits(max_metadata_bytes=65_536)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "info/index.json is" in result.summary
    assert "over the 65536-byte limit" in result.summary


def test_archive_limits_reject_zero():
    with pytest.raises(ValueError, match="max_members must be positive"):
        ArchiveLimits(max_members=0)


def test_archive_missing_blob_raises_store_error(tmp_path):
    context = good_tar_bz2(tmp_path)
    context.path.unlink()

    with pytest.raises(StoreError, match="could not open blob"):
        ArchiveCheck().run(context)


def test_read_index_json_stops_early(tmp_path):
    # The file is cut inside the member after info/index.json, which
    # read_index_json never reaches but the archive check does.
    index = index_json()
    data = tar_bz2_bytes([*info_members(index), ("lib/big", payload(400_000))], compresslevel=1)
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data[: len(data) * 3 // 4])

    assert json.loads(read_index_json(context.path, context.filename)) == index
    assert ArchiveCheck().run(context).outcome is CheckOutcome.FAIL


def test_read_index_json_missing(tmp_path):
    context = write_package(tmp_path, f"{STEM}.tar.bz2", tar_bz2_bytes(pkg_members()))

    with pytest.raises(ArchiveError, match="has no info/index.json"):
        read_index_json(context.path, context.filename)


@pytest.mark.parametrize(
    ("relative_path", "reason"),
    [
        ("edge/wrong-compression/nano-2.4.1-0.tar.bz2", "is gzip data, not bzip2 data"),
        ("edge/uncompressed-tar/flask-0.11.1-py_0.tar.bz2", "is a plain (uncompressed) tar archive"),
        ("edge/conda-index-corrupt-channel/noarch/bad_package.tar.bz2", "is unrecognised data starting with 0x"),
        ("edge/conda-index-corrupt-channel/noarch/another_bad_package.conda", "is an empty file, not a zip"),
        ("edge/not-conda-packages/a.tar.bz2", "has no info/index.json"),
        ("edge/dummy-channel.tar.bz2", "has no info/index.json"),
    ],
    ids=["gzip", "plain-tar", "text", "empty-conda", "not-a-package", "channel-tarball"],
)
def test_archive_corpus_edge_fails(corpus, relative_path, reason):
    path = corpus / relative_path
    context = CheckContext(path=path, filename=path.name, subdir=path.parent.name, record={})

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert reason in result.summary


def test_archive_tarfile_error_is_fail(tmp_path):
    # bzip2 around bytes that are not a tar archive.
    context = write_package(tmp_path, f"{STEM}.tar.bz2", bz2.compress(b"not a tar archive" * 100))

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "is truncated or corrupt before the first member" in result.summary


def test_archive_zstd_frame_corrupt(tmp_path):
    entries = default_entries()
    entries[f"pkg-{STEM}.tar.zst"] = zstd_bytes(b"")[:4] + b"\x00garbage-after-magic"

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.FAIL
    assert f"pkg-{STEM}.tar.zst" in result.summary


def test_archive_bomb_trailing_zeros(tmp_path):
    # Every member is small, and the excess is zeros after the tar end-of-archive blocks.
    data = bz2.compress(tar_bytes([*info_members(index_json()), *pkg_members()]) + bytes(4_000_000))
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data)

    result = ArchiveCheck(ArchiveLimits(max_total_bytes=1_000_000)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "more than 1000000 bytes of uncompressed data" in result.summary


def test_archive_many_extra_entries_capped(tmp_path):
    extras = {f"extra/{i:03}": b"" for i in range(150)}
    entries = {**default_entries(), **extras}

    result = ArchiveCheck().run(conda_file(tmp_path, entries))

    assert result.outcome is CheckOutcome.WARN
    assert result.summary.endswith("extra/004 and 145 more")
    assert len(result.evidence["extra_entries"]) == 100
    assert result.evidence["extra_entry_count"] == 150


def test_archive_conda_duplicate_zip_entry(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in default_entries().items():
            archive.writestr(name, data)
        # zipfile warns about, but writes, a second entry with the same name.
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("metadata.json", b"{}")
    context = write_package(tmp_path, f"{STEM}.conda", buffer.getvalue())

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "duplicate zip entries: metadata.json" in result.summary


def test_archive_conda_central_directory_limit(tmp_path):
    extras = {f"extra/{i:05}": b"" for i in range(2_000)}
    context = conda_file(tmp_path, {**default_entries(), **extras})

    result = ArchiveCheck(ArchiveLimits(max_metadata_bytes=65_536)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "zip central directory is" in result.summary
    assert "over the 65536-byte limit" in result.summary


def zip64_bytes(entries, monkeypatch):
    """Write a zip with a zip64 end record whose 32-bit size field is saturated."""
    # zipfile writes the zip64 records only past 65535 entries or 4 GiB,
    # so the entry-count threshold is lowered while writing.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    data = bytearray(zip_bytes(entries))
    monkeypatch.undo()

    end = data.rfind(b"PK\x05\x06")
    data[end + 12 : end + 16] = b"\xff\xff\xff\xff"
    return bytes(data)


def test_archive_conda_zip64_pass(tmp_path, monkeypatch):
    context = write_package(tmp_path, f"{STEM}.conda", zip64_bytes(default_entries(), monkeypatch))

    result = ArchiveCheck().run(context)

    assert result.outcome is CheckOutcome.PASS


def test_archive_conda_zip64_central_directory_limit(tmp_path, monkeypatch):
    extras = {f"extra/{i:05}": b"" for i in range(2_000)}
    data = zip64_bytes({**default_entries(), **extras}, monkeypatch)
    context = write_package(tmp_path, f"{STEM}.conda", data)

    result = ArchiveCheck(ArchiveLimits(max_metadata_bytes=65_536)).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "zip central directory is" in result.summary
