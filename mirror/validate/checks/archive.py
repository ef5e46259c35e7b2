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
This module also provides `read_index_json`, which the metadata check
uses to read the same file the same way.
"""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path

from mirror.catalog.models import CheckOutcome
from mirror.validate.package_reader import (
    COMPONENTS,
    ArchiveError,
    ArchiveLimitError,
    ArchiveLimits,
    ArchiveScan,
    MemberReader,
    PackageMember,
    PackageReader,
    describe_content,
    format_of,
)
from mirror.validate.result import CheckContext, CheckResult

__all__ = [
    "ArchiveCheck",
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveLimits",
    "ArchiveScan",
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
        try:
            scan = scan_package(context.path, context.filename, self.limits)
        except ArchiveLimitError as exc:
            return CheckResult(CheckOutcome.FAIL, f"archive exceeds a limit: {exc}", self.limits.evidence())
        except ArchiveError as exc:
            return CheckResult(CheckOutcome.FAIL, str(exc), {"filename": context.filename})

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
    components = ("info",) if index_only else COMPONENTS
    with closing(reader.members(components)) as members:
        for member in members:
            if member.name == INDEX_JSON and member.reader is not None:
                _keep_index_json(reader, member, member.reader)
                if index_only:
                    break

    if reader.scan.index_json is None and not index_only:
        if reader.format == "conda":
            raise ArchiveError(f"{reader.label_of('info')} has no {INDEX_JSON}")
        raise ArchiveError(f"{filename} has no {INDEX_JSON}; every conda package must contain one")
    return reader.scan


def _keep_index_json(reader: PackageReader, member: PackageMember, content: MemberReader) -> None:
    label = reader.label_of(member.component)
    if reader.scan.index_json is not None:
        raise ArchiveError(f"{label} has more than one {INDEX_JSON}")
    if member.info.size > reader.limits.max_metadata_bytes:
        raise ArchiveLimitError(
            f"{label}: {INDEX_JSON} is {member.info.size} bytes, over the "
            f"{reader.limits.max_metadata_bytes}-byte limit for metadata files"
        )
    reader.scan.index_json = content.read()
