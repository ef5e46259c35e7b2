"""Archive check: the file is a well-formed `.tar.bz2` or `.conda` package.

The check first compares the file's magic bytes with its extension, then
streams every member of every tar to its end, so a truncated or corrupt
archive fails with the place where reading stopped. A `.conda` file must
also have the documented layout: a zip holding `metadata.json`,
`info-<stem>.tar.zst` and `pkg-<stem>.tar.zst`. Every package must
contain `info/index.json`.

Nothing is extracted to disk, and only metadata files (info/index.json,
metadata.json) are held in memory, each capped at `max_metadata_bytes`.
`ArchiveLimits` caps the total decompressed bytes and the number of
members, so a decompression bomb ends as a FAIL instead of exhausting
memory or time. This module also provides `read_index_json`, which the
metadata check uses to read the same file the same way.
"""

from __future__ import annotations

import bz2
import io
import json
import logging
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from conda_package_streaming.package_streaming import tar_generator

from mirror.catalog.models import CheckOutcome
from mirror.errors import MirrorError, StoreError
from mirror.validate.result import CheckContext, CheckResult

try:
    import compression.zstd as zstd  # Python 3.14 and later
except ImportError:
    import backports.zstd as zstd

logger = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 8 * 1024**3
MAX_MEMBERS = 1_000_000
MAX_METADATA_BYTES = 4 * 1024**2
CHUNK_SIZE = 1024 * 1024
# Member data is read in smaller pieces so a truncation is reported close
# to where it happened.
MEMBER_CHUNK_SIZE = 64 * 1024

# Evidence lists at most this many names, so a hostile archive cannot bloat the catalog.
MAX_LISTED_NAMES = 100

INDEX_JSON = "info/index.json"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Decompressors report corrupt input as these types. Blob read failures
# are raised as StoreError instead (see _BlobFile), so an OSError caught
# here comes from the data rather than from a disk read.
_CORRUPT_DATA_ERRORS = (
    tarfile.TarError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    zstd.ZstdError,
    NotImplementedError,  # zipfile: an unsupported compression method
)


class ArchiveError(MirrorError):
    """A package file is not a well-formed conda archive. The message gives the reason and the place."""


class ArchiveLimitError(ArchiveError):
    """A package file exceeds a size or member-count limit of the archive check."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on the work of reading one package file.

    `max_total_bytes` caps the decompressed bytes of all tar streams and
    zip entries together. `max_members` caps tar members plus zip entries.
    `max_metadata_bytes` caps each file read into memory and the tar
    header data (pax headers, long names) read before one member.
    """

    max_total_bytes: int = MAX_TOTAL_BYTES
    max_members: int = MAX_MEMBERS
    max_metadata_bytes: int = MAX_METADATA_BYTES

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_members", "max_metadata_bytes"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"ArchiveLimits.{name} must be positive, got {value}")


@dataclass
class ArchiveScan:
    """Findings of one pass over a package file."""

    format: str
    members: int = 0
    uncompressed_bytes: int = 0
    index_json: bytes | None = None
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    conda_metadata: Any = None
    extra_entries: list[str] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        evidence: dict[str, Any] = {
            "format": self.format,
            "members": self.members,
            "uncompressed_bytes": self.uncompressed_bytes,
            "components": self.components,
        }
        if self.format == "conda":
            # Only the known key, because a hostile metadata.json can be megabytes.
            metadata = self.conda_metadata if isinstance(self.conda_metadata, dict) else {}
            evidence["conda_pkg_format_version"] = metadata.get("conda_pkg_format_version")
            evidence["extra_entries"] = self.extra_entries[:MAX_LISTED_NAMES]
            evidence["extra_entry_count"] = len(self.extra_entries)
        return evidence


class ArchiveCheck:
    """Check that a package file is a complete, well-formed conda archive within the limits."""

    name = "archive"
    version = "1"

    def __init__(self, limits: ArchiveLimits | None = None):
        self.limits = limits or ArchiveLimits()

    def run(self, context: CheckContext) -> CheckResult:
        try:
            scan = scan_package(context.path, context.filename, self.limits)
        except ArchiveLimitError as exc:
            return CheckResult(CheckOutcome.FAIL, f"archive exceeds a limit: {exc}", _limit_evidence(self.limits))
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
    package_format = format_of(filename)
    with _open_blob(path) as blob:
        _check_magic(blob, filename, package_format)
        scan = ArchiveScan(format=package_format)
        if package_format == "tar.bz2":
            _scan_tar_bz2(blob, filename, scan, limits, index_only)
        else:
            _scan_conda(blob, filename, scan, limits, index_only)

    if scan.index_json is None and not index_only:
        raise ArchiveError(f"{filename} has no {INDEX_JSON}; every conda package must contain one")
    return scan


def format_of(filename: str) -> str:
    """Return "conda" or "tar.bz2" from the package file name, or raise ArchiveError."""
    if filename.endswith(".conda"):
        return "conda"
    if filename.endswith(".tar.bz2"):
        return "tar.bz2"
    raise ArchiveError(f"{filename} has an unsupported extension; conda packages end in .conda or .tar.bz2")


def describe_content(head: bytes) -> str:
    """Name the kind of data that starts with `head` (at least 262 bytes to detect tar)."""
    if not head:
        return "an empty file"
    signatures = [
        (b"BZh", "bzip2 data"),
        (b"PK\x03\x04", "a zip archive"),
        (b"PK\x05\x06", "an empty zip archive"),
        (b"\x1f\x8b", "gzip data"),
        (ZSTD_MAGIC, "zstd data"),
        (b"\xfd7zXZ\x00", "xz data"),
    ]
    for magic, description in signatures:
        if head.startswith(magic):
            return description
    if head[257:262] == b"ustar":
        return "a plain (uncompressed) tar archive"
    return f"unrecognised data starting with 0x{head[:8].hex()}"


def _check_magic(blob: IO[bytes], filename: str, package_format: str) -> None:
    head = blob.read(512)
    blob.seek(0)
    content = describe_content(head)
    expected = "bzip2 data" if package_format == "tar.bz2" else "a zip archive"
    if content != expected:
        raise ArchiveError(f"{filename} is {content}, not {expected} as the .{package_format} extension requires")


def _scan_tar_bz2(blob: IO[bytes], filename: str, scan: ArchiveScan, limits: ArchiveLimits, index_only: bool) -> None:
    with bz2.open(blob, "rb") as stream:
        walker = _TarWalker(stream, filename, scan, limits)
        scan.components["package"] = walker.walk(index_only=index_only)


def _scan_conda(blob: IO[bytes], filename: str, scan: ArchiveScan, limits: ArchiveLimits, index_only: bool) -> None:
    stem = filename[: -len(".conda")]
    _check_central_directory_size(blob, filename, limits)
    try:
        zip_file = zipfile.ZipFile(blob)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"{filename} is not a readable zip archive (truncated?): {exc}") from exc

    with zip_file:
        entries = _conda_entries(zip_file, filename, stem, scan, limits)
        scan.conda_metadata = _read_conda_metadata(zip_file, filename, limits)
        components = ("info",) if index_only else ("info", "pkg")
        for component in components:
            entry = entries[component]
            scan.components[component] = _scan_conda_component(zip_file, entry, filename, scan, limits, index_only)
            if index_only and scan.index_json is not None:
                return

        if index_only:
            return
        if scan.index_json is None:
            raise ArchiveError(f"{filename}: {entries['info'].filename} has no {INDEX_JSON}")
        for extra in scan.extra_entries:
            _drain_zip_entry(zip_file, zip_file.getinfo(extra), filename, scan, limits)


def _check_central_directory_size(blob: IO[bytes], filename: str, limits: ArchiveLimits) -> None:
    """Reject a zip whose central directory is over `max_metadata_bytes`.

    zipfile reads the whole central directory into memory and builds one
    ZipInfo per entry before any entry count can be checked. The size
    comes from the end-of-central-directory record, or from its zip64
    form when the 32-bit field is saturated. A file without a readable
    record is left to zipfile, which rejects it.
    """
    size = _central_directory_size(blob)
    if size is not None and size > limits.max_metadata_bytes:
        raise ArchiveLimitError(
            f"{filename}: zip central directory is {size} bytes, over the "
            f"{limits.max_metadata_bytes}-byte limit for metadata"
        )


def _central_directory_size(blob: IO[bytes]) -> int | None:
    # The end record is 22 bytes plus a comment of at most 65535 bytes.
    file_size = blob.seek(0, io.SEEK_END)
    tail_start = max(0, file_size - 22 - 65535)
    blob.seek(tail_start)
    tail = blob.read()
    blob.seek(0)

    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return None
    size = int.from_bytes(tail[end + 12 : end + 16], "little")
    if size != 0xFFFFFFFF:
        return size

    # The zip64 locator sits just before the end record and points to the zip64 end record.
    locator = tail[end - 20 : end] if end >= 20 else b""
    if not locator.startswith(b"PK\x06\x07"):
        return None
    blob.seek(int.from_bytes(locator[8:16], "little"))
    record = blob.read(56)
    blob.seek(0)
    if not record.startswith(b"PK\x06\x06") or len(record) < 48:
        return None
    return int.from_bytes(record[40:48], "little")


def _conda_entries(
    zip_file: zipfile.ZipFile, filename: str, stem: str, scan: ArchiveScan, limits: ArchiveLimits
) -> dict[str, zipfile.ZipInfo]:
    infos = zip_file.infolist()
    _count_members(scan, len(infos), limits, filename)

    names = [info.filename for info in infos]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ArchiveError(f"{filename} has duplicate zip entries: {', '.join(duplicates[:5])}")

    required = {"metadata": "metadata.json", "info": f"info-{stem}.tar.zst", "pkg": f"pkg-{stem}.tar.zst"}
    missing = [name for name in required.values() if name not in names]
    if missing:
        raise ArchiveError(
            f"{filename} lacks {', '.join(missing)}; a .conda file must contain "
            f"metadata.json, info-<stem>.tar.zst and pkg-<stem>.tar.zst"
        )

    scan.extra_entries = sorted(set(names) - set(required.values()))
    return {key: zip_file.getinfo(name) for key, name in required.items()}


def _read_conda_metadata(zip_file: zipfile.ZipFile, filename: str, limits: ArchiveLimits) -> Any:
    info = zip_file.getinfo("metadata.json")
    if info.file_size > limits.max_metadata_bytes:
        raise ArchiveLimitError(
            f"{filename}: metadata.json is {info.file_size} bytes, over the {limits.max_metadata_bytes}-byte limit"
        )
    try:
        with zip_file.open(info) as entry:
            raw = entry.read(limits.max_metadata_bytes + 1)
        if len(raw) > limits.max_metadata_bytes:
            raise ArchiveLimitError(
                f"{filename}: metadata.json decompresses to over {limits.max_metadata_bytes} bytes"
            )
        return json.loads(raw)
    except (ValueError, *_CORRUPT_DATA_ERRORS) as exc:
        raise ArchiveError(f"{filename}: metadata.json is unreadable or not valid JSON: {exc}") from exc


def _scan_conda_component(
    zip_file: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    filename: str,
    scan: ArchiveScan,
    limits: ArchiveLimits,
    index_only: bool,
) -> dict[str, Any]:
    label = f"{filename}: {entry.filename}"
    try:
        with zip_file.open(entry) as raw:
            head = raw.read(len(ZSTD_MAGIC))
    except _CORRUPT_DATA_ERRORS as exc:
        raise ArchiveError(f"{label} cannot be read from the zip: {exc}") from exc
    if head != ZSTD_MAGIC:
        raise ArchiveError(f"{label} is {describe_content(head)}, not zstd data as the .tar.zst name requires")

    try:
        with zip_file.open(entry) as raw, zstd.open(raw, "rb") as stream:
            walker = _TarWalker(stream, label, scan, limits)
            component = walker.walk(index_only=index_only)
    except ArchiveError:
        raise
    except _CORRUPT_DATA_ERRORS as exc:
        raise ArchiveError(f"{label} is corrupt at its end: {exc}") from exc

    component["compressed_bytes"] = entry.compress_size
    return component


def _drain_zip_entry(
    zip_file: zipfile.ZipFile, entry: zipfile.ZipInfo, filename: str, scan: ArchiveScan, limits: ArchiveLimits
) -> None:
    # Reading to the end makes zipfile verify the entry's CRC-32.
    try:
        with zip_file.open(entry) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                _count_bytes(scan, len(chunk), limits, f"{filename}: {entry.filename}")
    except _CORRUPT_DATA_ERRORS as exc:
        raise ArchiveError(f"{filename}: zip entry {entry.filename} is corrupt: {exc}") from exc


class _TarWalker:
    """Read one tar stream member by member, to its end, within the limits."""

    def __init__(self, stream: IO[bytes], label: str, scan: ArchiveScan, limits: ArchiveLimits):
        self.metered = _MeteredStream(stream, label, scan, limits)
        self.label = label
        self.scan = scan
        self.limits = limits
        self.members = 0
        self.position = "before the first member"

    def walk(self, *, index_only: bool) -> dict[str, Any]:
        try:
            with closing(tar_generator(self.metered)) as members:
                self._read_members(members, index_only)
            if not (index_only and self.scan.index_json is not None):
                self.position = "after the end of the tar archive"
                self._drain_trailing_data()
        except ArchiveError:
            raise
        except _CORRUPT_DATA_ERRORS as exc:
            raise ArchiveError(f"{self.label} is truncated or corrupt {self.position}: {exc}") from exc
        return {"members": self.members, "uncompressed_bytes": self.metered.total}

    def _read_members(self, members: Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]], index_only: bool) -> None:
        for tar, member in members:
            self.members += 1
            _count_members(self.scan, 1, self.limits, self.label)
            self._read_member(tar, member)
            self.position = f"after member {member.name!r}"

            # NOTE: tarfile appends every TarInfo to `tar.members`, even in
            # stream mode. Clearing the list keeps memory flat for archives with
            # many members. Checked against CPython 3.11, whose TarFile.__iter__
            # indexes the list only for members it has already read.
            tar.members.clear()
            self.metered.start_header()
            if index_only and self.scan.index_json is not None:
                return

    def _read_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if member.issym() or member.islnk():
            return
        if member.size > self.limits.max_total_bytes - self.scan.uncompressed_bytes:
            raise ArchiveLimitError(
                f"{self.label}: member {member.name!r} declares {member.size} bytes, which would pass "
                f"the {self.limits.max_total_bytes}-byte limit on uncompressed data"
            )

        data = tar.extractfile(member)
        if data is None:
            return
        self.metered.start_data()
        if _normalise(member.name) == INDEX_JSON:
            self._keep_index_json(data, member)
        else:
            self._drain_member(data, member)

    def _keep_index_json(self, data: IO[bytes], member: tarfile.TarInfo) -> None:
        if self.scan.index_json is not None:
            raise ArchiveError(f"{self.label} has more than one {INDEX_JSON}")
        if member.size > self.limits.max_metadata_bytes:
            raise ArchiveLimitError(
                f"{self.label}: {INDEX_JSON} is {member.size} bytes, over the "
                f"{self.limits.max_metadata_bytes}-byte limit for metadata files"
            )
        self.position = f"inside member {member.name!r}"
        self.scan.index_json = data.read()

    def _drain_member(self, data: IO[bytes], member: tarfile.TarInfo) -> None:
        received = 0
        self.position = f"inside member {member.name!r} after 0 of {member.size} bytes"
        while chunk := data.read(MEMBER_CHUNK_SIZE):
            received += len(chunk)
            self.position = f"inside member {member.name!r} after {received} of {member.size} bytes"

    def _drain_trailing_data(self) -> None:
        # Reading past the tar end-of-archive blocks to the end of the
        # compressed stream is what detects a file cut after the last member.
        self.metered.start_data()
        while self.metered.read(CHUNK_SIZE):
            pass


class _MeteredStream:
    """A read-only stream wrapper that counts decompressed bytes against the limits.

    Between members it also caps the bytes read at `max_metadata_bytes`,
    because tarfile reads pax headers and long names into memory whole.
    """

    def __init__(self, stream: IO[bytes], label: str, scan: ArchiveScan, limits: ArchiveLimits):
        self.stream = stream
        self.label = label
        self.scan = scan
        self.limits = limits
        self.total = 0
        self.header_bytes: int | None = 0

    def start_header(self) -> None:
        self.header_bytes = 0

    def start_data(self) -> None:
        self.header_bytes = None

    def read(self, size: int = -1) -> bytes:
        # tarfile always passes a size, so read(-1) returns one chunk, not the rest.
        if size is None or size < 0:
            size = CHUNK_SIZE
        data = self.stream.read(size)
        self.total += len(data)
        _count_bytes(self.scan, len(data), self.limits, self.label)

        if self.header_bytes is not None:
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_metadata_bytes:
                raise ArchiveLimitError(
                    f"{self.label}: over {self.limits.max_metadata_bytes} bytes of tar header data "
                    f"before one member (oversized pax or long-name header)"
                )
        return data


def _count_members(scan: ArchiveScan, count: int, limits: ArchiveLimits, label: str) -> None:
    scan.members += count
    if scan.members > limits.max_members:
        raise ArchiveLimitError(f"{label}: more than {limits.max_members} members")


def _count_bytes(scan: ArchiveScan, count: int, limits: ArchiveLimits, label: str) -> None:
    scan.uncompressed_bytes += count
    if scan.uncompressed_bytes > limits.max_total_bytes:
        raise ArchiveLimitError(f"{label}: more than {limits.max_total_bytes} bytes of uncompressed data")


def _normalise(member_name: str) -> str:
    return member_name[2:] if member_name.startswith("./") else member_name


def _limit_evidence(limits: ArchiveLimits) -> dict[str, Any]:
    return {
        "max_total_bytes": limits.max_total_bytes,
        "max_members": limits.max_members,
        "max_metadata_bytes": limits.max_metadata_bytes,
    }


class _BlobFile(io.FileIO):
    """A read-only blob file whose own read errors are raised as StoreError.

    Decompressors also raise OSError for corrupt data. Converting the
    file's errors here keeps a disk fault (an ERROR) apart
    from a corrupt package (a FAIL).
    """

    def readinto(self, buffer: Any) -> int | None:
        try:
            return super().readinto(buffer)
        except OSError as exc:
            raise StoreError(f"could not read blob {self.name}: {exc}; check the blob store") from exc

    def readall(self) -> bytes:
        try:
            return super().readall()
        except OSError as exc:
            raise StoreError(f"could not read blob {self.name}: {exc}; check the blob store") from exc


@contextmanager
def _open_blob(path: Path) -> Iterator[IO[bytes]]:
    try:
        raw = _BlobFile(path, "rb")
    except OSError as exc:
        raise StoreError(f"could not open blob {path}: {exc}; check the blob store") from exc
    with io.BufferedReader(raw, buffer_size=CHUNK_SIZE) as blob:
        yield blob
