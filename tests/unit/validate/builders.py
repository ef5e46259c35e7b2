"""Builders of small good and bad conda package files for the validation tests.

Everything is built in memory with tarfile, zipfile, bz2 and zstandard and
then written to a test's tmp_path, so each test states the defect it makes.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import random
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import zstandard

from mirror.demo.packages import PackageSpec, TarMember, build_members
from mirror.demo.packages import write_package as write_demo_package
from mirror.validate.result import CheckContext

Members = Iterable[tuple[str, bytes]]


def repodata_records(repodata: Path) -> dict[str, dict[str, Any]]:
    """Return the records of one repodata.json, .tar.bz2 and .conda together, by file name."""
    document = json.loads(repodata.read_text())
    return {**document.get("packages", {}), **document.get("packages.conda", {})}


def index_json(
    name: str = "demo",
    version: str = "1.0",
    build: str = "h1234_0",
    *,
    build_number: int = 0,
    subdir: str = "linux-64",
    depends: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "subdir": subdir,
        "depends": depends if depends is not None else ["libc >=2.17"],
        **extra,
    }


def payload(size: int, seed: int = 0) -> bytes:
    """Return `size` incompressible but reproducible bytes."""
    return random.Random(seed).randbytes(size)


def tar_bytes(members: Members, *, pax_headers: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax_headers and name in pax_headers:
                info.pax_headers = dict(pax_headers[name])
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def info_members(index: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    return [("info/index.json", json.dumps(index).encode()), ("info/files", b"lib/libdemo.so\n")]


def pkg_members(data: bytes = b"\x7fELF demo library") -> list[tuple[str, bytes]]:
    return [("lib/libdemo.so", data)]


def tar_bz2_bytes(members: Members, *, compresslevel: int = 9, **tar_options: Any) -> bytes:
    return bz2.compress(tar_bytes(members, **tar_options), compresslevel)


def zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def conda_entries(stem: str, info: Members, pkg: Members) -> dict[str, bytes]:
    """Return the zip entries of a well-formed .conda file, for a test to alter."""
    return {
        "metadata.json": json.dumps({"conda_pkg_format_version": 2}).encode(),
        f"info-{stem}.tar.zst": zstd_bytes(tar_bytes(info)),
        f"pkg-{stem}.tar.zst": zstd_bytes(tar_bytes(pkg)),
    }


def zip_bytes(entries: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def record_for(data: bytes, index: Mapping[str, Any]) -> dict[str, Any]:
    """Build the repodata record an indexer would write for a file with these bytes."""
    return {
        **index,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }


def write_package(
    tmp_path: Path,
    filename: str,
    data: bytes,
    *,
    index: Mapping[str, Any] | None = None,
    subdir: str = "linux-64",
    record: Mapping[str, Any] | None = None,
) -> CheckContext:
    """Store `data` under a hash-like blob name and return its context.

    The blob name has no extension on purpose, as in the blob store, so
    checks must take the format from `filename`.
    """
    path = tmp_path / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    if record is None:
        record = record_for(data, index or {})
    return CheckContext(path=path, filename=filename, subdir=subdir, record=record)


def good_tar_bz2(tmp_path: Path, **index_fields: Any) -> CheckContext:
    index = index_json(**index_fields)
    filename = f"{index['name']}-{index['version']}-{index['build']}.tar.bz2"
    data = tar_bz2_bytes([*info_members(index), *pkg_members()])
    return write_package(tmp_path, filename, data, index=index, subdir=index["subdir"])


def good_conda(tmp_path: Path, **index_fields: Any) -> CheckContext:
    index = index_json(**index_fields)
    stem = f"{index['name']}-{index['version']}-{index['build']}"
    data = zip_bytes(conda_entries(stem, info_members(index), pkg_members()))
    return write_package(tmp_path, f"{stem}.conda", data, index=index, subdir=index["subdir"])


# Hostile packages: real conda packages from mirror.demo.packages with members added or replaced.

HOSTILE_FORMATS = ("tar.bz2", "conda")


def demo_members(files: Mapping[str, bytes] | None = None, *, name: str = "demo") -> tuple[list, list]:
    """Return the info and payload members of a consistent demo package, for a test to alter."""
    spec = PackageSpec(
        name=name,
        version="1.0",
        build="0",
        subdir="linux-64",
        files=dict(files) if files is not None else {"lib/libdemo.so": b"\x7fELF demo library"},
    )
    return build_members(spec)


def demo_package(
    tmp_path: Path,
    fmt: str,
    *,
    files: Mapping[str, bytes] | None = None,
    extra_payload: Iterable[TarMember] = (),
    extra_info: Iterable[TarMember] = (),
    replace_info: Mapping[str, bytes | None] | None = None,
    name: str = "demo",
) -> CheckContext:
    """Write a demo package to `tmp_path / "packages"`, with hostile members added, and return its context.

    `replace_info` swaps the content of info members (for a forged
    paths.json), and a None value removes that member.
    """
    info, payload = demo_members(files, name=name)
    replace_info = dict(replace_info or {})
    info = [
        TarMember(member.name, replace_info[member.name], member.mode, member.mtime)
        if member.name in replace_info
        else member
        for member in info
        if not (member.name in replace_info and replace_info[member.name] is None)
    ]
    out_dir = tmp_path / "packages"
    out_dir.mkdir(exist_ok=True)
    path = write_demo_package(f"{name}-1.0-0", [*info, *extra_info], [*payload, *extra_payload], out_dir, fmt)
    return CheckContext(path=path, filename=path.name, subdir="linux-64", record={"name": name})


def stray_files(tmp_path: Path) -> list[str]:
    """List what a test left in `tmp_path` besides the packages it built and its empty working folder."""
    allowed_suffixes = (".conda", ".tar.bz2")
    found = []
    for path in sorted(tmp_path.rglob("*")):
        relative = path.relative_to(tmp_path)
        if path.is_dir() and relative.parts in (("packages",), ("cwd",)):
            continue
        if relative.parts[0] == "packages" and path.is_file() and path.name.endswith(allowed_suffixes):
            continue
        if path.is_file() and len(relative.parts) == 1 and re.fullmatch(r"[0-9a-f]{64}", path.name):
            continue  # a blob written by write_package, named by its sha256
        found.append(str(relative))
    return found


def isolate_working_folder(tmp_path: Path, monkeypatch: Any) -> Iterator[None]:
    """Run a test in an empty working folder, then check that no file was left anywhere.

    Use from an autouse fixture: `yield from isolate_working_folder(tmp_path, monkeypatch)`.
    """
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield
    leftovers = stray_files(tmp_path)
    if leftovers:
        raise AssertionError(f"the test left files outside its packages: {leftovers}")
