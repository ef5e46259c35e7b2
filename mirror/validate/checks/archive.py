"""Archive check: the file is a well-formed `.tar.bz2` or `.conda` package.

The check streams every member of every tar to its end through
`mirror.validate.package_reader`. That reader compares the file's magic
bytes with its extension and reports a truncated or corrupt archive with
the place where reading stopped. It also checks the `.conda` layout: a
zip that contains `metadata.json`, `info-<stem>.tar.zst` and
`pkg-<stem>.tar.zst`.
Every package must also contain exactly one `info/index.json`.

Nothing is extracted to disk, and only metadata files (info/index.json,
metadata.json) are held in memory, each capped at `max_metadata_bytes`.
`ArchiveLimits` caps the total decompressed bytes, the number of
members, the length of member names and the compression ratio, so a
decompression bomb ends as a FAIL instead of exhausting memory or time.
This module also provides `IndexJsonVisitor`, which the metadata check
uses to read the same file the same way, and `read_index_json`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mirror.catalog.models import CheckOutcome
from mirror.validate.package_reader import (
    COMPONENTS,
    ArchiveError,
    ArchiveLimitError,
    ArchiveLimits,
    ArchiveScan,
    PackageMember,
    PackageReader,
    describe_content,
    format_of,
)
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.shared_scan import BytesSink, run_alone, stream_members

__all__ = [
    "ArchiveCheck",
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveLimits",
    "ArchiveScan",
    "IndexJsonVisitor",
    "describe_content",
    "format_of",
    "read_index_json",
    "scan_package",
]

logger = logging.getLogger(__name__)

INDEX_JSON = "info/index.json"


class ArchiveCheck:
    """Check that a package file is a complete, well-formed conda archive within the limits."""

    name = "archive"
    # Version 2 added the member-name length and compression ratio limits.
    version = "2"

    def __init__(self, limits: ArchiveLimits | None = None):
        self.limits = limits or ArchiveLimits()

    def run(self, context: CheckContext) -> CheckResult:
        return run_alone(self, context)

    def begin(self, context: CheckContext) -> _ArchiveVisitor:
        return _ArchiveVisitor(context.filename, self.limits)


class IndexJsonVisitor:
    """Keep the package's info/index.json while the members stream past.

    With `index_only`, only the info component is read and the visitor
    is done once info/index.json is found (or, in a `.conda`, once the
    info tar has ended without it). Otherwise it reads both components,
    and a second info/index.json raises ArchiveError.
    """

    def __init__(self, *, index_only: bool):
        self.index_only = index_only
        self.components = ("info",) if index_only else COMPONENTS
        self.index_json: bytes | None = None
        self._reader: PackageReader | None = None

    def start(self, reader: PackageReader) -> None:
        self._reader = reader

    def visit(self, member: PackageMember) -> BytesSink | None:
        if member.name != INDEX_JSON or member.reader is None or self._reader is None:
            return None

        label = self._reader.label_of(member.component)
        if self.index_json is not None:
            raise ArchiveError(f"{label} has more than one {INDEX_JSON}")
        limit = self._reader.limits.max_metadata_bytes
        if member.info.size > limit:
            raise ArchiveLimitError(
                f"{label}: {INDEX_JSON} is {member.info.size} bytes, over the "
                f"{limit}-byte limit for metadata files"
            )
        return BytesSink(self._keep)

    def is_done(self) -> bool:
        if not self.index_only or self._reader is None:
            return False
        if self.index_json is not None:
            return True
        # The reader records a .conda component's counts once its tar has been read to the end.
        return self._reader.format == "conda" and "info" in self._reader.scan.components

    def _keep(self, content: bytes) -> None:
        self.index_json = content


class _ArchiveVisitor:
    components = COMPONENTS

    def __init__(self, filename: str, limits: ArchiveLimits):
        self.filename = filename
        self.limits = limits
        self.index = IndexJsonVisitor(index_only=False)
        self.reader: PackageReader | None = None

    def start(self, reader: PackageReader) -> None:
        self.reader = reader
        self.index.start(reader)

    def visit(self, member: PackageMember) -> BytesSink | None:
        return self.index.visit(member)

    def is_done(self) -> bool:
        return False

    def finish(self, error: Exception | None) -> CheckResult:
        try:
            scan = _finish_scan(self.index, self.reader, error)
        except ArchiveLimitError as exc:
            return CheckResult(CheckOutcome.FAIL, f"archive exceeds a limit: {exc}", self.limits.evidence())
        except ArchiveError as exc:
            return CheckResult(CheckOutcome.FAIL, str(exc), {"filename": self.filename})

        if scan.extra_entries:
            listed = ", ".join(scan.extra_entries[:5])
            more = f" and {len(scan.extra_entries) - 5} more" if len(scan.extra_entries) > 5 else ""
            return CheckResult(
                CheckOutcome.WARN,
                f".conda zip has entries that conda ignores: {listed}{more}",
                scan.evidence(),
            )
        return CheckResult(
            CheckOutcome.PASS,
            f"well-formed {scan.format} archive: {scan.members} members, "
            f"{scan.uncompressed_bytes} bytes uncompressed",
            scan.evidence(),
        )


def read_index_json(path: Path, filename: str, limits: ArchiveLimits | None = None) -> bytes:
    """Return the raw bytes of the package's info/index.json.

    Reads only as far as that member (for `.conda`, only the info
    component). Raises ArchiveError when the file is malformed or has no
    info/index.json, and StoreError when the blob cannot be read.
    """
    scan = scan_package(path, filename, limits or ArchiveLimits(), index_only=True)
    if scan.index_json is None:
        raise ArchiveError(f"{filename} has no {INDEX_JSON}")
    return scan.index_json


def scan_package(path: Path, filename: str, limits: ArchiveLimits, *, index_only: bool = False) -> ArchiveScan:
    """Stream the package at `path`, checking its format, layout and limits.

    `filename` is the package's name, which sets the expected format,
    because a stored blob is named by its hash. With `index_only`,
    reading stops once info/index.json is found. Otherwise every member
    is read to its end and a missing info/index.json raises ArchiveError.
    """
    reader = PackageReader(path, filename, limits)
    index = IndexJsonVisitor(index_only=index_only)
    (error,) = stream_members(reader, [index])
    if index_only:
        if error is not None:
            raise error
        reader.scan.index_json = index.index_json
        return reader.scan
    return _finish_scan(index, reader, error)


def _finish_scan(index: IndexJsonVisitor, reader: PackageReader | None, error: Exception | None) -> ArchiveScan:
    """Return the full scan, or raise the error that ended it or the lack of info/index.json."""
    if error is not None:
        raise error
    if reader is None:
        raise RuntimeError("the archive visitor finished without being started; run it through SharedScan")

    reader.scan.index_json = index.index_json
    if reader.scan.index_json is None:
        if reader.format == "conda":
            raise ArchiveError(f"{reader.label_of('info')} has no {INDEX_JSON}")
        raise ArchiveError(f"{reader.filename} has no {INDEX_JSON}; every conda package must contain one")
    return reader.scan
