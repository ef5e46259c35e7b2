"""Build small, real conda packages in both formats, `.conda` and `.tar.bz2`.

The demo upstream and the test fixtures use this builder instead of
conda-build. A `PackageSpec` describes the package. `build_members` turns it
into the tar members of the `info/` metadata and of the payload, and
`write_package` packs members into an archive. Callers that need packages no
real builder would make (extra or hostile members, odd tar headers) can edit
the member lists between those two steps, or bend `info/index.json` with
`PackageSpec.index_overrides`.

Builds are deterministic: the same spec gives the same bytes. Every tar
member has a fixed mtime, uid and gid 0, empty owner names and a sorted place
in the archive, and the zip entries of a `.conda` carry a fixed date.

Whole archives are built in memory, so this module suits small demo and test
packages, not real software.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import logging
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from mirror.config.schema import SUBDIR_PATTERN
from mirror.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

# 2023-11-14 22:13:20 UTC, in milliseconds as conda-build writes `timestamp`.
DEFAULT_TIMESTAMP_MS = 1_700_000_000_000

FORMATS = {"conda": ".conda", "tar.bz2": ".tar.bz2"}
NOARCH_KINDS = ("generic", "python")

# Conda forbids "-" in versions and build strings because the file name
# `<name>-<version>-<build>` is split on it.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_.+!]+$")
BUILD_PATTERN = re.compile(r"^[A-Za-z0-9_.+]+$")

# The level conda-package-streaming 0.13 (`create.ZSTD_COMPRESS_LEVEL`) uses.
ZSTD_LEVEL = 19
CONDA_FORMAT_METADATA = b'{"conda_pkg_format_version": 2}'

# The zip format cannot store dates before 1980.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class _Omit:
    """Type of `OMIT`, the `index_overrides` value that removes a key from index.json."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = _Omit()


@dataclass
class PackageSpec:
    """Metadata and payload of one conda package.

    `timestamp` is in milliseconds since the epoch, as in `info/index.json`.
    Tar members get the same instant, in seconds, as their mtime.

    `noarch` defaults to "generic" when `subdir` is "noarch", and must stay
    None for any other subdir. `index_overrides` is merged into
    `info/index.json` last and is not checked, so it can build inconsistent
    packages; a value of `OMIT` removes that key.
    """

    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    subdir: str = "noarch"
    depends: list[str] = field(default_factory=list)
    constrains: list[str] = field(default_factory=list)
    license: str | None = "MIT"
    noarch: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    executables: set[str] = field(default_factory=set)
    index_overrides: dict[str, Any] = field(default_factory=dict)
    test_commands: list[str] = field(default_factory=list)
    timestamp: int = DEFAULT_TIMESTAMP_MS
    summary: str = ""

    def __post_init__(self) -> None:
        if self.noarch is None and self.subdir == "noarch":
            self.noarch = "generic"
        self.validate()

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    def filename(self, fmt: str) -> str:
        return self.stem + _extension(fmt)

    def validate(self) -> None:
        """Raise ValueError when a field could not appear in a package conda-build makes."""
        _check_identity(self)
        _check_noarch(self)
        for path in self.files:
            _check_payload_path(path)

        stray = sorted(set(self.executables) - set(self.files))
        if stray:
            raise ValueError(
                f"{self.stem}: executables {stray} are not in files; add them to files first"
            )


@dataclass(frozen=True)
class TarMember:
    """One member of a tar archive, with the header fields a builder may set.

    `data` is the content of a regular file. Set `type` to `tarfile.SYMTYPE`
    or `tarfile.LNKTYPE` with a `linkname` for links; `data` is then ignored.
    """

    name: str
    data: bytes = b""
    mode: int = 0o644
    mtime: int = DEFAULT_TIMESTAMP_MS // 1000
    type: bytes = tarfile.REGTYPE
    linkname: str = ""

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = self.mode
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.linkname = self.linkname
        info.size = len(self.data) if self.type == tarfile.REGTYPE else 0
        return info


def build_package(spec: PackageSpec, out_dir: Path, fmt: str) -> Path:
    """Write `<out_dir>/<name>-<version>-<build>.<ext>` for `spec` and return its path.

    `fmt` is "conda" or "tar.bz2". An existing file with the same bytes is
    left untouched, so rebuilding keeps its modification time.
    """
    spec.validate()
    info_members, payload_members = build_members(spec)
    return write_package(spec.stem, info_members, payload_members, Path(out_dir), fmt)


def build_members(spec: PackageSpec) -> tuple[list[TarMember], list[TarMember]]:
    """Return the `info/` members and the payload members of the package, each sorted by name."""
    mtime = spec.timestamp // 1000
    payload = [
        TarMember(path, content, 0o755 if path in spec.executables else 0o644, mtime)
        for path, content in sorted(spec.files.items())
    ]

    metadata = {
        "info/index.json": _json_bytes(index_json(spec)),
        "info/paths.json": _json_bytes(paths_json(spec)),
        "info/files": "".join(f"{path}\n" for path in sorted(spec.files)).encode(),
        "info/about.json": _json_bytes(about_json(spec)),
    }
    if spec.noarch:
        metadata["info/link.json"] = _json_bytes(link_json(spec))
    if spec.test_commands:
        metadata["info/test/run_test.sh"] = run_test_script(spec.test_commands)

    info = [TarMember(name, content, 0o644, mtime) for name, content in sorted(metadata.items())]
    return info, payload


def write_package(
    stem: str,
    info_members: list[TarMember],
    payload_members: list[TarMember],
    out_dir: Path,
    fmt: str,
) -> Path:
    """Pack members into `<out_dir>/<stem>.<ext>` in the order given and return its path.

    A `.tar.bz2` is one tar with the info members first, then the payload.
    A `.conda` is an uncompressed zip of `metadata.json`,
    `pkg-<stem>.tar.zst` and `info-<stem>.tar.zst`, in the order
    conda-package-streaming 0.13 (`create.conda_builder`) writes them.
    """
    extension = _extension(fmt)
    if fmt == "conda":
        data = _conda_bytes(stem, info_members, payload_members)
    else:
        data = bz2.compress(tar_bytes(info_members + payload_members), 9)

    path = Path(out_dir) / f"{stem}{extension}"
    changed = atomic_write_bytes(path, data)
    logger.debug("built %s (%d bytes, changed=%s)", path, len(data), changed)
    return path


def index_json(spec: PackageSpec) -> dict[str, Any]:
    """Return `info/index.json` with the keys conda-build writes, then `index_overrides`.

    `constrains` and `license` are left out when empty, and `noarch` when
    None, as conda-build does.
    """
    arch, platform = arch_and_platform(spec.subdir)
    index: dict[str, Any] = {
        "arch": arch,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "name": spec.name,
        "platform": platform,
        "subdir": spec.subdir,
        "timestamp": spec.timestamp,
        "version": spec.version,
    }
    if spec.constrains:
        index["constrains"] = list(spec.constrains)
    if spec.license is not None:
        index["license"] = spec.license
    if spec.noarch:
        index["noarch"] = spec.noarch

    for key, value in spec.index_overrides.items():
        if value is OMIT:
            index.pop(key, None)
        else:
            index[key] = value
    return index


def paths_json(spec: PackageSpec) -> dict[str, Any]:
    """Return `info/paths.json` (version 1) listing every payload file as a hard link."""
    entries = [
        {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_in_bytes": len(content),
        }
        for path, content in sorted(spec.files.items())
    ]
    return {"paths": entries, "paths_version": 1}


def about_json(spec: PackageSpec) -> dict[str, Any]:
    about: dict[str, Any] = {"summary": spec.summary}
    if spec.license is not None:
        about["license"] = spec.license
    return about


def link_json(spec: PackageSpec) -> dict[str, Any]:
    """Return `info/link.json`, which conda-build writes for noarch packages."""
    noarch: dict[str, Any] = {"type": spec.noarch}
    if spec.noarch == "python":
        noarch["entry_points"] = []
    return {"noarch": noarch, "package_metadata_version": 1}


def run_test_script(commands: list[str]) -> bytes:
    lines = ["#!/bin/bash", "set -ex", "", *commands, ""]
    return "\n".join(lines).encode()


def arch_and_platform(subdir: str) -> tuple[str | None, str | None]:
    """Return the `arch` and `platform` values conda-build derives from a subdir.

    "linux-64" gives ("x86_64", "linux"), "win-32" gives ("x86", "win"),
    "osx-arm64" gives ("arm64", "osx"); noarch gives (None, None).
    """
    if subdir == "noarch":
        return None, None

    platform, _, bits = subdir.partition("-")
    arch = {"64": "x86_64", "32": "x86"}.get(bits, bits)
    return arch, platform


def tar_bytes(members: list[TarMember]) -> bytes:
    """Return an uncompressed POSIX (pax) tar of `members`, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            content = io.BytesIO(member.data) if member.type == tarfile.REGTYPE else None
            tar.addfile(member.tarinfo(), content)
    return buffer.getvalue()


def _conda_bytes(
    stem: str, info_members: list[TarMember], payload_members: list[TarMember]
) -> bytes:
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    mtime = max((member.mtime for member in info_members + payload_members), default=0)
    entries = [
        ("metadata.json", CONDA_FORMAT_METADATA),
        (f"pkg-{stem}.tar.zst", compressor.compress(tar_bytes(payload_members))),
        (f"info-{stem}.tar.zst", compressor.compress(tar_bytes(info_members))),
    ]

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(_zip_entry(name, mtime), data)
    return buffer.getvalue()


def _zip_entry(name: str, mtime: int) -> zipfile.ZipInfo:
    # ZipInfo would otherwise take the creating system and its permissions
    # from the machine that builds, which would make builds differ.
    entry = zipfile.ZipInfo(name, date_time=max(ZIP_EPOCH, time.gmtime(mtime)[:6]))
    entry.compress_type = zipfile.ZIP_STORED
    entry.create_system = 3
    entry.external_attr = 0o100644 << 16
    return entry


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def _extension(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown package format {fmt!r}; use one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _check_identity(spec: PackageSpec) -> None:
    checks = (
        ("name", spec.name, NAME_PATTERN),
        ("version", spec.version, VERSION_PATTERN),
        ("build", spec.build, BUILD_PATTERN),
        ("subdir", spec.subdir, SUBDIR_PATTERN),
    )
    for label, value, pattern in checks:
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(
                f"invalid package {label} {value!r}: it must match {pattern.pattern}; "
                "use index_overrides to put other values in info/index.json"
            )

    if not isinstance(spec.build_number, int) or spec.build_number < 0:
        raise ValueError(f"{spec.stem}: build_number {spec.build_number!r} must be an int >= 0")


def _check_noarch(spec: PackageSpec) -> None:
    if spec.noarch is not None and spec.noarch not in NOARCH_KINDS:
        raise ValueError(f"{spec.stem}: noarch {spec.noarch!r} must be one of {NOARCH_KINDS}")

    if spec.noarch and spec.subdir != "noarch":
        raise ValueError(
            f"{spec.stem}: noarch={spec.noarch!r} needs subdir 'noarch', not {spec.subdir!r}; "
            "use index_overrides to build such an inconsistent package on purpose"
        )


def _check_payload_path(path: str) -> None:
    parts = path.split("/")
    unsafe = (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == "info"
    )
    if unsafe:
        raise ValueError(
            f"invalid payload path {path!r}: use a relative POSIX path without '.', '..', "
            "backslashes or an 'info/' prefix; edit the members from build_members() "
            "to build a hostile package"
        )
