from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.demo.packages import TarMember
from mirror.validate import shared_scan
from mirror.validate.checks import malware
from mirror.validate.checks.archive import ArchiveCheck
from mirror.validate.checks.integrity import IntegrityCheck
from mirror.validate.checks.malware import MalwareCheck, WindowCutter, scan_windows
from mirror.validate.checks.metadata import MetadataCheck
from mirror.validate.checks.paths import PathsCheck
from mirror.validate.checks.scripts import ScriptsCheck
from mirror.validate.package_reader import ArchiveLimits, MemberReader, PackageReader
from mirror.validate.pipeline import run_checks
from mirror.validate.result import CheckResult
from mirror.validate.shared_scan import SharedScan, is_content_check, run_alone

from .builders import (
    HOSTILE_FORMATS,
    demo_package,
    good_conda,
    good_tar_bz2,
    index_json,
    info_members,
    payload,
    tar_bz2_bytes,
    write_package,
)
STEM = "demo-1.0-h1234_0"
# Split so that this test file itself is not an EICAR test file for a scanner.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture(scope="module")
def malware_check() -> MalwareCheck:
    return MalwareCheck()


@pytest.fixture
def passes(monkeypatch) -> list[str]:
    """Record the file name of every pass that SharedScan opens."""
    opened: list[str] = []

    class CountingReader(PackageReader):
        def members(self, components=("info", "pkg")):
            opened.append(self.filename)
            return super().members(components)

    monkeypatch.setattr(shared_scan, "PackageReader", CountingReader)
    return opened


def content_checks(malware_check: MalwareCheck, limits: ArchiveLimits | None = None) -> list:
    return [
        ArchiveCheck(limits),
        MetadataCheck(limits),
        PathsCheck(limits),
        ScriptsCheck(limits),
        malware_check,
    ]


class VisitorCheck:
    """A content check whose visitor fails at a chosen step, or counts what it saw."""

    version = "1"
    components = ("info", "pkg")

    def __init__(self, name: str, fail_in: str | None = None):
        self.name = name
        self.fail_in = fail_in
        self.limits = ArchiveLimits()
        self.members: list[str] = []
        self.fed_bytes = 0

    def run(self, context):
        return run_alone(self, context)

    def begin(self, context):
        if self.fail_in == "begin":
            raise RuntimeError("begin failed on purpose")
        return self

    def start(self, reader):
        pass

    def visit(self, member):
        self.members.append(member.name)
        if self.fail_in == "visit":
            raise RuntimeError("visit failed on purpose")
        return self if member.reader is not None else None

    def feed(self, chunk):
        self.fed_bytes += len(chunk)
        if self.fail_in == "feed":
            raise RuntimeError("feed failed on purpose")

    def end(self):
        pass

    def is_done(self):
        return False

    def finish(self, error):
        if error is not None:
            raise error
        return CheckResult(CheckOutcome.PASS, f"{len(self.members)} members")


def member_reader(data: bytes) -> MemberReader:
    info = tarfile.TarInfo("lib/big")
    info.size = len(data)
    return MemberReader(io.BytesIO(data), info, "test", ArchiveLimits())


def as_dict(result: CheckResult) -> dict:
    return {"outcome": result.outcome, "summary": result.summary, "evidence": result.evidence}


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_shared_scan_equals_run(tmp_path, malware_check, fmt):
    context = demo_package(
        tmp_path,
        fmt,
        files={"lib/libdemo.so": b"\x7fELF demo", "share/eicar.txt": EICAR},
        extra_payload=[TarMember("share/up", type=tarfile.SYMTYPE, linkname="../../etc/passwd")],
    )
    checks = content_checks(malware_check)

    alone = [as_dict(check.run(context)) for check in checks]
    scan = SharedScan(context, checks)
    scan.run()
    shared = [as_dict(scan.result(index)) for index in range(len(checks))]

    assert shared == alone
    assert [item["outcome"] for item in shared] == [
        CheckOutcome.PASS,
        CheckOutcome.PASS,
        CheckOutcome.FAIL,
        CheckOutcome.PASS,
        CheckOutcome.FAIL,
    ]


@pytest.mark.parametrize("builder", [good_tar_bz2, good_conda], ids=["tar.bz2", "conda"])
def test_run_checks_one_pass(tmp_path, malware_check, passes, builder):
    context = builder(tmp_path)

    results = run_checks(context, [IntegrityCheck(), *content_checks(malware_check)])

    assert [check.name for check, _ in results] == ["integrity", "archive", "metadata", "paths", "scripts", "malware"]
    assert passes == [context.filename]


def test_run_checks_one_pass_per_limits(tmp_path, malware_check, passes):
    context = good_tar_bz2(tmp_path)
    small = ArchiveLimits(max_members=50)

    results = run_checks(context, [ArchiveCheck(), PathsCheck(small), MetadataCheck(small)])

    # good_tar_bz2 has info/files but no paths.json, so paths warns.
    assert [result.outcome for _, result in results] == [CheckOutcome.PASS, CheckOutcome.WARN, CheckOutcome.PASS]
    assert len(passes) == 2


def test_run_checks_keeps_order(tmp_path, malware_check):
    checks = [ArchiveCheck(), IntegrityCheck(), PathsCheck(), VisitorCheck("counting")]

    results = run_checks(good_conda(tmp_path), checks)

    assert [check.name for check, _ in results] == ["archive", "integrity", "paths", "counting"]
    assert results[3][1].summary == "3 members"


def test_run_checks_gate_ends_pass(tmp_path, passes):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, record={**context.record, "sha256": "0" * 64})
    after = VisitorCheck("after")

    results = run_checks(context, [ArchiveCheck(), IntegrityCheck(), after])

    assert [check.name for check, _ in results] == ["archive", "integrity"]
    assert results[1][1].outcome is CheckOutcome.FAIL
    assert after.members == []
    assert len(passes) == 1


@pytest.mark.parametrize("step", ["begin", "visit", "feed"])
def test_run_checks_failing_visitor_isolated(tmp_path, malware_check, step):
    broken = VisitorCheck("broken", fail_in=step)

    context = demo_package(tmp_path, "tar.bz2")

    results = dict(run_checks(context, [ArchiveCheck(), broken, PathsCheck(), malware_check]))

    assert results[broken].outcome is CheckOutcome.ERROR
    assert results[broken].summary == f"check broken raised RuntimeError: {step} failed on purpose"
    assert [results[check].outcome for check in results if check is not broken] == [CheckOutcome.PASS] * 3


def test_shared_scan_truncation_each_check(tmp_path, malware_check):
    # Cut inside the member after info/index.json: metadata has what it
    # needs, while the checks that read the whole file each report the cut.
    index = index_json()
    data = tar_bz2_bytes([*info_members(index), ("lib/big", payload(400_000))], compresslevel=1)
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data[: len(data) * 3 // 4], index=index)

    results = dict(run_checks(context, content_checks(malware_check)))
    summaries = {check.name: result.summary for check, result in results.items()}
    outcomes = {check.name: result.outcome for check, result in results.items()}

    assert outcomes == {
        "archive": CheckOutcome.FAIL,
        "metadata": CheckOutcome.PASS,
        "paths": CheckOutcome.FAIL,
        "scripts": CheckOutcome.FAIL,
        "malware": CheckOutcome.FAIL,
    }
    assert summaries["archive"].startswith(f"{STEM}.tar.bz2 is truncated or corrupt inside member 'lib/big'")
    assert summaries["paths"].startswith("archive could not be read to its end, so its paths are unchecked")
    assert summaries["scripts"].startswith("archive could not be read to its end, so its scripts are unchecked")
    assert summaries["malware"].startswith("archive could not be read to its end, so it was not fully scanned")


def test_shared_scan_stops_when_done(tmp_path, passes):
    # Only metadata is due, so the pass ends after info/index.json and
    # never reaches the corrupt tail.
    index = index_json()
    data = tar_bz2_bytes([*info_members(index), ("lib/big", payload(400_000))], compresslevel=1)
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data[: len(data) * 3 // 4], index=index)

    result = MetadataCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert passes == [f"{STEM}.tar.bz2"]


def test_shared_scan_bomb_stops_every_check(tmp_path, passes):
    data = tar_bz2_bytes([*info_members(index_json()), ("lib/zeros", bytes(4_000_000))])
    context = write_package(tmp_path, f"{STEM}.tar.bz2", data, index=index_json())
    counting = VisitorCheck("counting")
    counting.limits = ArchiveLimits(max_total_bytes=1_000_000)

    checks = [*content_checks(MalwareCheck(limits=counting.limits), counting.limits), counting]

    results = dict(run_checks(context, checks))

    archive = next(result for check, result in results.items() if check.name == "archive")
    assert archive.outcome is CheckOutcome.FAIL
    assert "'lib/zeros' declares 4000000 bytes" in archive.summary
    for name in ("paths", "scripts", "malware"):
        result = next(result for check, result in results.items() if check.name == name)
        assert result.outcome is CheckOutcome.FAIL, name
        assert "declares 4000000 bytes" in result.summary, name
    assert results[counting].outcome is CheckOutcome.ERROR
    assert "ArchiveLimitError" in results[counting].summary
    assert counting.fed_bytes < 1_000_000
    assert len(passes) == 1


def test_shared_scan_missing_blob_errors(tmp_path, malware_check):
    context = good_conda(tmp_path)
    context.path.unlink()

    results = run_checks(context, content_checks(malware_check))

    assert [result.outcome for _, result in results] == [CheckOutcome.ERROR] * 5
    assert all("raised StoreError: could not open blob" in result.summary for _, result in results)


def test_is_content_check_built_ins(malware_check):
    assert all(is_content_check(check) for check in content_checks(malware_check))
    assert not is_content_check(IntegrityCheck())


def test_shared_scan_result_before_run(tmp_path):
    scan = SharedScan(good_tar_bz2(tmp_path), [ArchiveCheck()])

    with pytest.raises(RuntimeError, match="call run\\(\\) first"):
        scan.result(0)


def windows_by_pieces(data: bytes, max_scan: int) -> list[bytes]:
    """Cut `data` into scan windows by reading pieces of READ_CHUNK_BYTES, which WindowCutter must match."""
    window_bytes = malware.SCAN_WINDOW_BYTES
    overlap = malware.WINDOW_OVERLAP_BYTES
    piece_bytes = malware.READ_CHUNK_BYTES
    partial = len(data) > max_scan
    head_bytes = max_scan - window_bytes if partial else len(data)
    windows, window, tail, consumed = [], bytearray(), bytearray(), 0
    for start in range(0, len(data), piece_bytes):
        piece = data[start : start + piece_bytes]
        if consumed < head_bytes:
            head_part = piece[: head_bytes - consumed]
            window += head_part
            consumed += len(head_part)
            piece = piece[len(head_part) :]
            if len(window) >= window_bytes or consumed == head_bytes:
                windows.append(bytes(window))
                window = window[-overlap:] if consumed < head_bytes else bytearray()
        if partial and piece:
            tail += piece
            del tail[:-window_bytes]
    if partial and tail:
        windows.append(bytes(tail))
    return windows


@pytest.mark.parametrize("feed_size", [1, 77, 250, 251, 999, 4096])
@pytest.mark.parametrize(
    ("size", "max_scan"),
    [(2560, 5000), (10240, 3000), (1000, 1000), (0, 3000), (3001, 3000), (2750, 2000)],
)
def test_window_cutter_any_chunks(monkeypatch, feed_size, size, max_scan):
    monkeypatch.setattr(malware, "SCAN_WINDOW_BYTES", 1000)
    monkeypatch.setattr(malware, "WINDOW_OVERLAP_BYTES", 100)
    monkeypatch.setattr(malware, "READ_CHUNK_BYTES", 250)
    data = payload(size, seed=3)

    cutter = WindowCutter(len(data), max_scan)
    windows = []
    for start in range(0, len(data), feed_size):
        windows += cutter.feed(data[start : start + feed_size])
    windows += cutter.finish()

    assert windows == windows_by_pieces(data, max_scan)
    assert list(scan_windows(member_reader(data), max_scan)) == windows_by_pieces(data, max_scan)
