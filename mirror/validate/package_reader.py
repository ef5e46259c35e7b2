"""Streaming reader of `.tar.bz2` and `.conda` package files, shared by the checks.

`PackageReader.members()` yields every tar member of a package as a
`PackageMember`: its component ("info" for `info/...` metadata, "pkg"
for the payload), its `TarInfo` header and, for regular files, a
`MemberReader` over its content. Nothing is extracted to disk. Content
arrives in chunks, and a member is held in memory whole only when a
caller asks for it and it is within `max_metadata_bytes`.

Reading also checks the format. The magic bytes must match the
extension. Every tar is read to its end, so a truncated or corrupt file
is reported with the place where reading stopped. A `.conda` zip must
contain `metadata.json`, `info-<stem>.tar.zst` and `pkg-<stem>.tar.zst`.

`ArchiveLimits` bounds the work: decompressed bytes, member count,
metadata size, member-name length and compression ratio. The byte,
ratio and header limits are enforced as bytes stream, so a
decompression bomb stops early. Errors raised while iterating:
ArchiveLimitError for a limit, ArchiveError for a malformed file, and
StoreError when the blob itself cannot be read.
"""

from __future__ import annotations

import bz2
import io
import json
import logging
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from conda_package_streaming.package_streaming import tar_generator

from mirror.errors import MirrorError, StoreError

try:
    import compression.zstd as zstd  # Python 3.14 and later
except ImportError:
    import backports.zstd as zstd

logger = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 8 * 1024**3
MAX_MEMBERS = 1_000_000
MAX_METADATA_BYTES = 4 * 1024**2
# PATH_MAX and NAME_MAX on Linux; longer names cannot be created there.
MAX_NAME_BYTES = 4096
MAX_SEGMENT_BYTES = 255
MAX_COMPRESSION_RATIO = 200.0
# The ratio limit applies only after a stream has unpacked this many
# bytes, because the zero padding of a small tar compresses far beyond
# any useful limit.
RATIO_GRACE_BYTES = 1024**2
CHUNK_SIZE = 1024 * 1024
# Member data is read in smaller pieces so a truncation is reported close
# to where it happened.
MEMBER_CHUNK_SIZE = 64 * 1024

# Evidence lists at most this many names, so a hostile archive cannot bloat the catalog.
MAX_LISTED_NAMES = 100

COMPONENTS = ("info", "pkg")
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
    """A package file exceeds a limit of `ArchiveLimits`."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on the work of reading one package file.

    `max_total_bytes` caps the decompressed bytes of all tar streams and
    zip entries together. `max_members` caps tar members plus zip entries.
    `max_metadata_bytes` caps each file read into memory whole and the tar
    header data (pax headers, long names) read before one member.
    `max_name_bytes` caps a member name or link target in UTF-8 bytes, and
    `max_segment_bytes` each `/`-separated part of a member name.
    `max_compression_ratio` caps unpacked bytes per compressed byte of
    each tar stream and zip entry once it has unpacked more than
    `RATIO_GRACE_BYTES`.
    """

    max_total_bytes: int = MAX_TOTAL_BYTES
    max_members: int = MAX_MEMBERS
    max_metadata_bytes: int = MAX_METADATA_BYTES
    max_name_bytes: int = MAX_NAME_BYTES
    max_segment_bytes: int = MAX_SEGMENT_BYTES
    max_compression_ratio: float = MAX_COMPRESSION_RATIO

    def __post_init__(self) -> None:
        for name in (
            "max_total_bytes",
            "max_members",
            "max_metadata_bytes",
            "max_name_bytes",
            "max_segment_bytes",
            "max_compression_ratio",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"ArchiveLimits.{name} must be positive, got {value}")

    def evidence(self) -> dict[str, Any]:
        return {
            "max_total_bytes": self.max_total_bytes,
            "max_members": self.max_members,
            "max_metadata_bytes": self.max_metadata_bytes,
            "max_name_bytes": self.max_name_bytes,
            "max_segment_bytes": self.max_segment_bytes,
            "max_compression_ratio": self.max_compression_ratio,
        }


@dataclass
class ArchiveScan:
    """Counts of one pass over a package file, filled in while its members stream."""

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


class MemberReader:
    """Read access to the content of one regular tar member.

    Valid only until the member iterator moves on, because all members
    share one decompressed stream. Whatever the caller leaves unread is
    read and discarded when the iterator moves on.
    """

    def __init__(self, data: IO[bytes], member: tarfile.TarInfo, label: str, limits: ArchiveLimits):
        self._data = data
        self._label = label
        self._limits = limits
        self.name = member.name
        self.size = member.size
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        """Return up to `size` bytes, or the rest of the member when `size` is negative.

        Reading the rest at once is allowed only for members within
        `max_metadata_bytes` and raises ArchiveLimitError otherwise.
        Corrupt data raises ArchiveError naming the member and the offset.
        """
        if size is None or size < 0:
            self.check_fits_in_memory()
            size = self.size - self.received

        try:
            chunk = self._data.read(size)
        except ArchiveError:
            raise
        except _CORRUPT_DATA_ERRORS as exc:
            raise ArchiveError(
                f"{self._label} is truncated or corrupt inside member {self.name!r} "
                f"after {self.received} of {self.size} bytes: {exc}"
            ) from exc
        self.received += len(chunk)
        return chunk

    def check_fits_in_memory(self) -> None:
        """Raise ArchiveLimitError when the member is over `max_metadata_bytes`, the cap for reading it whole."""
        if self.size > self._limits.max_metadata_bytes:
            raise ArchiveLimitError(
                f"{self._label}: {self.name} is {self.size} bytes, over the "
                f"{self._limits.max_metadata_bytes}-byte limit for a file read into memory"
            )

    def chunks(self, size: int = MEMBER_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the unread content in pieces of at most `size` bytes."""
        while chunk := self.read(size):
            yield chunk

    def drain(self) -> None:
        for _ in self.chunks():
            pass


class PackageMember(NamedTuple):
    """One tar member of a package: its component, header and content reader.

    `reader` is None for anything but a regular file (directories,
    links, devices). `name` strips the "./" prefix that some tars add.
    """

    component: str
    info: tarfile.TarInfo
    reader: MemberReader | None

    @property
    def name(self) -> str:
        return normalise_name(self.info.name)


class PackageReader:
    """Stream the members of one package file within `limits`.

    `filename` is the package's name, which sets the expected format,
    because a stored blob is named by its hash. `scan` is filled in as
    the members stream.
    """

    def __init__(self, path: Path, filename: str, limits: ArchiveLimits | None = None):
        self.path = path
        self.filename = filename
        self.limits = limits or ArchiveLimits()
        self.format = format_of(filename)
        self.scan = ArchiveScan(format=self.format)

    def label_of(self, component: str) -> str:
        """Return the name of the tar that contains `component`, as error messages write it."""
        if self.format == "tar.bz2":
            return self.filename
        stem = self.filename[: -len(".conda")]
        return f"{self.filename}: {component}-{stem}.tar.zst"

    def members(self, components: Collection[str] = COMPONENTS) -> Iterator[PackageMember]:
        """Yield the members of `components`, info first in a `.conda`.

        A `.tar.bz2` has both components in one tar, so its members come
        in archive order and the whole tar is read even when only one
        component is requested. In a `.conda`, a component not requested
        is not read at all, and the extra zip entries are read only when
        both components are. Close the iterator (`contextlib.closing`)
        when stopping early, so the blob is closed at once.
        """
        unknown = sorted(set(components) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown package components {unknown}; use a subset of {list(COMPONENTS)}")

        with _open_blob(self.path) as blob:
            _check_magic(blob, self.filename, self.format)
            if self.format == "tar.bz2":
                yield from self._tar_bz2_members(blob, components)
            else:
                yield from self._conda_members(blob, components)

    def _tar_bz2_members(self, blob: IO[bytes], components: Collection[str]) -> Iterator[PackageMember]:
        with bz2.open(blob, "rb") as stream:
            walker = _TarWalker(stream, self.filename, self.scan, self.limits, blob.tell)
            for member, reader in walker.members():
                component = "info" if normalise_name(member.name).startswith("info/") else "pkg"
                if component in components:
                    yield PackageMember(component, member, reader)
            self.scan.components["package"] = walker.summary()

    def _conda_members(self, blob: IO[bytes], components: Collection[str]) -> Iterator[PackageMember]:
        stem = self.filename[: -len(".conda")]
        _check_central_directory_size(blob, self.filename, self.limits)
        try:
            zip_file = zipfile.ZipFile(blob)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ArchiveError(f"{self.filename} is not a readable zip archive (truncated?): {exc}") from exc

        with zip_file:
            entries = _conda_entries(zip_file, self.filename, stem, self.scan, self.limits)
            self.scan.conda_metadata = _read_conda_metadata(zip_file, self.filename, self.limits)
            for component in COMPONENTS:
                if component in components:
                    yield from self._conda_component(zip_file, entries[component], component)

            if set(COMPONENTS) <= set(components):
                for extra in self.scan.extra_entries:
                    _drain_zip_entry(zip_file, zip_file.getinfo(extra), self.filename, self.scan, self.limits)

    def _conda_component(
        self, zip_file: zipfile.ZipFile, entry: zipfile.ZipInfo, component: str
    ) -> Iterator[PackageMember]:
        label = f"{self.filename}: {entry.filename}"
        try:
            with zip_file.open(entry) as raw:
                head = raw.read(len(ZSTD_MAGIC))
        except _CORRUPT_DATA_ERRORS as exc:
            raise ArchiveError(f"{label} cannot be read from the zip: {exc}") from exc
        if head != ZSTD_MAGIC:
            raise ArchiveError(f"{label} is {describe_content(head)}, not zstd data as the .tar.zst name requires")

        try:
            with zip_file.open(entry) as raw, zstd.open(raw, "rb") as stream:
                walker = _TarWalker(stream, label, self.scan, self.limits, raw.tell)
                for member, reader in walker.members():
                    yield PackageMember(component, member, reader)
        except ArchiveError:
            raise
        except _CORRUPT_DATA_ERRORS as exc:
            raise ArchiveError(f"{label} is corrupt at its end: {exc}") from exc

        self.scan.components[component] = {**walker.summary(), "compressed_bytes": entry.compress_size}


def format_of(filename: str) -> str:
    """Return "conda" or "tar.bz2" from the package file name, or raise ArchiveError."""
    if filename.endswith(".conda"):
        return "conda"
    if filename.endswith(".tar.bz2"):
        return "tar.bz2"
    raise ArchiveError(f"{filename} has an unsupported extension; conda packages end in .conda or .tar.bz2")


def normalise_name(member_name: str) -> str:
    """Strip the "./" prefix that some tar writers put before every member name."""
    return member_name[2:] if member_name.startswith("./") else member_name


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
    for info in infos:
        _check_zip_entry_ratio(info, filename, limits)

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


def _check_zip_entry_ratio(info: zipfile.ZipInfo, filename: str, limits: ArchiveLimits) -> None:
    # zipfile stops an entry at its declared size, so the header values bound the ratio.
    if info.file_size <= RATIO_GRACE_BYTES:
        return
    if info.file_size > limits.max_compression_ratio * max(info.compress_size, 1):
        raise ArchiveLimitError(
            f"{filename}: zip entry {info.filename} declares {info.file_size} bytes from "
            f"{info.compress_size} compressed bytes, over the maximum compression ratio "
            f"of {limits.max_compression_ratio:g}"
        )


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

    def __init__(
        self,
        stream: IO[bytes],
        label: str,
        scan: ArchiveScan,
        limits: ArchiveLimits,
        compressed_position: Callable[[], int],
    ):
        self.metered = _MeteredStream(stream, label, scan, limits, compressed_position)
        self.label = label
        self.scan = scan
        self.limits = limits
        self.count = 0
        self.position = "before the first member"

    def members(self) -> Iterator[tuple[tarfile.TarInfo, MemberReader | None]]:
        """Yield each member with its reader, then read the stream to its end."""
        try:
            with closing(tar_generator(self.metered)) as members:
                for tar, member in members:
                    reader = self._start_member(tar, member)
                    yield member, reader
                    if reader is not None:
                        reader.drain()
                    self._finish_member(tar, member)
            self.position = "after the end of the tar archive"
            self._drain_trailing_data()
        except ArchiveError:
            raise
        except _CORRUPT_DATA_ERRORS as exc:
            raise ArchiveError(f"{self.label} is truncated or corrupt {self.position}: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        return {"members": self.count, "uncompressed_bytes": self.metered.total}

    def _start_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> MemberReader | None:
        self.count += 1
        _count_members(self.scan, 1, self.limits, self.label)
        _check_name_length(member, self.label, self.limits)
        if member.issym() or member.islnk():
            return None
        if member.size > self.limits.max_total_bytes - self.scan.uncompressed_bytes:
            raise ArchiveLimitError(
                f"{self.label}: member {member.name!r} declares {member.size} bytes, which would pass "
                f"the {self.limits.max_total_bytes}-byte limit on uncompressed data"
            )

        data = tar.extractfile(member)
        if data is None:
            return None
        self.metered.start_data()
        self.position = f"inside member {member.name!r}"
        return MemberReader(data, member, self.label, self.limits)

    def _finish_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.position = f"after member {member.name!r}"

        # NOTE: tarfile appends every TarInfo to `tar.members`, even in
        # stream mode. Clearing the list keeps memory flat for archives with
        # many members. Checked against CPython 3.11, whose TarFile.__iter__
        # indexes the list only for members it has already read.
        tar.members.clear()
        self.metered.start_header()

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
    `compressed_position` returns how many compressed bytes the
    decompressor has consumed so far, for the ratio limit.
    """

    def __init__(
        self,
        stream: IO[bytes],
        label: str,
        scan: ArchiveScan,
        limits: ArchiveLimits,
        compressed_position: Callable[[], int],
    ):
        self.stream = stream
        self.label = label
        self.scan = scan
        self.limits = limits
        self.compressed_position = compressed_position
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
        self._check_ratio()

        if self.header_bytes is not None:
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_metadata_bytes:
                raise ArchiveLimitError(
                    f"{self.label}: over {self.limits.max_metadata_bytes} bytes of tar header data "
                    f"before one member (oversized pax or long-name header)"
                )
        return data

    def _check_ratio(self) -> None:
        if self.total <= RATIO_GRACE_BYTES:
            return
        compressed = max(self.compressed_position(), 1)
        if self.total > self.limits.max_compression_ratio * compressed:
            raise ArchiveLimitError(
                f"{self.label}: {self.total} bytes unpacked from {compressed} compressed bytes, "
                f"over the maximum compression ratio of {self.limits.max_compression_ratio:g}"
            )


def _check_name_length(member: tarfile.TarInfo, label: str, limits: ArchiveLimits) -> None:
    short_name = member.name if len(member.name) <= 100 else member.name[:100] + "..."
    for kind, value in (("name", member.name), ("link target", member.linkname)):
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > limits.max_name_bytes:
            raise ArchiveLimitError(
                f"{label}: member {short_name!r} has a {size}-byte {kind}, "
                f"over the {limits.max_name_bytes}-byte limit for a path"
            )

    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in member.name.split("/"))
    if longest > limits.max_segment_bytes:
        raise ArchiveLimitError(
            f"{label}: member {short_name!r} has a {longest}-byte path segment, "
            f"over the {limits.max_segment_bytes}-byte limit for one file or folder name"
        )


def _count_members(scan: ArchiveScan, count: int, limits: ArchiveLimits, label: str) -> None:
    scan.members += count
    if scan.members > limits.max_members:
        raise ArchiveLimitError(f"{label}: more than {limits.max_members} members")


def _count_bytes(scan: ArchiveScan, count: int, limits: ArchiveLimits, label: str) -> None:
    scan.uncompressed_bytes += count
    if scan.uncompressed_bytes > limits.max_total_bytes:
        raise ArchiveLimitError(f"{label}: more than {limits.max_total_bytes} bytes of uncompressed data")


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
