"""Index a folder of conda packages as a channel, playing the upstream's indexer.

`index_channel` writes the `repodata.json` that conda-index would write for
the packages it finds, with its `.zst` and `.bz2` forms. `build_demo_upstream`
builds and indexes the small channel the demo mirrors. Neither is the
mirror's own publisher: they exist to give the mirror a realistic upstream
to sync from, in the demo and in tests.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import logging
import tarfile
import zipfile
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import zstandard
from conda_package_streaming import package_streaming
from conda_package_streaming.package_streaming import stream_conda_info

from mirror.config.schema import SUBDIR_PATTERN
from mirror.demo.packages import DEFAULT_TIMESTAMP_MS, FORMATS, PackageSpec, build_package
from mirror.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

# conda-index leaves `arch` and `platform` out of repodata records, as the
# repodata it wrote for the test channels of conda and conda-index shows.
KEYS_NOT_IN_RECORD = ("arch", "platform")

# Errors that a truncated or corrupt archive raises while it is streamed. The
# zstd module that conda-package-streaming imports has its own ZstdError.
UNREADABLE_PACKAGE_ERRORS = (
    OSError,
    EOFError,
    LookupError,
    tarfile.TarError,
    zipfile.BadZipFile,
    getattr(package_streaming.zstd, "ZstdError", OSError),
)

HASH_CHUNK_BYTES = 1 << 20
DAY_MS = 86_400_000


def record_for(path: Path) -> dict[str, Any]:
    """Return the repodata record of a package file: its `info/index.json` plus size and hashes."""
    path = Path(path)
    index = _read_index_json(path)
    record = {key: value for key, value in index.items() if key not in KEYS_NOT_IN_RECORD}

    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            sha256.update(chunk)
            md5.update(chunk)

    record["size"] = path.stat().st_size
    record["sha256"] = sha256.hexdigest()
    record["md5"] = md5.hexdigest()
    return record


def index_channel(channel_dir: Path, subdirs: Iterable[str] | None = None) -> None:
    """Write `<subdir>/repodata.json`, `.json.zst` and `.json.bz2` for each subdir of a channel.

    Without `subdirs`, every subdir folder that contains package files is
    indexed. `noarch/` is always indexed, and created empty when missing,
    because conda clients request it for every platform. A package whose
    `info/index.json` cannot be read raises ValueError.
    """
    channel_dir = Path(channel_dir)
    names = _subdirs_to_index(channel_dir, subdirs)
    for subdir in names:
        _index_subdir(channel_dir / subdir, subdir)


def repodata_for(subdir_dir: Path, subdir: str) -> dict[str, Any]:
    """Return the repodata of the package files directly inside `subdir_dir`."""
    tar_bz2: dict[str, Any] = {}
    conda: dict[str, Any] = {}
    for path in sorted(subdir_dir.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(FORMATS["tar.bz2"]):
            tar_bz2[path.name] = record_for(path)
        elif path.name.endswith(FORMATS["conda"]):
            conda[path.name] = record_for(path)

    return {
        "info": {"subdir": subdir},
        "packages": tar_bz2,
        "packages.conda": conda,
        "removed": [],
        "repodata_version": 1,
    }


def build_demo_upstream(channel_dir: Path) -> list[Path]:
    """Build the demo channel in both formats, index it, and return the package paths.

    The channel contains:

    - linux-64 `demo-tool` 0.9 (needs `libdemo 1.*`) and 1.0 (needs
      `libdemo >=2,<3` and `demo-data >=1.1`), with the executable
      `bin/demo-tool`;
    - linux-64 `libdemo` 1.0 and 2.0, a shell library in `lib/libdemo/`;
      2.0 constrains `demo-tool >=1.0`;
    - noarch `demo-data` 1.0 and 1.1, a text file in `share/demo-data/`;
    - noarch `demo-extras` 0.3, which depends on `demo-tool` and which the
      demo whitelist leaves out.

    No package depends on python, so clients install them without an
    interpreter.
    """
    channel_dir = Path(channel_dir)
    paths = [
        build_package(spec, channel_dir / spec.subdir, fmt)
        for spec in demo_specs()
        for fmt in FORMATS
    ]
    index_channel(channel_dir)
    logger.info("built demo upstream with %d package files in %s", len(paths), channel_dir)
    return paths


def demo_specs() -> list[PackageSpec]:
    """Return the specs of the demo channel's packages; see `build_demo_upstream`."""
    return [
        _libdemo("1.0", DEFAULT_TIMESTAMP_MS - 30 * DAY_MS),
        _libdemo("2.0", DEFAULT_TIMESTAMP_MS, constrains=["demo-tool >=1.0"]),
        _demo_data("1.0", ["Ada", "Grace"], DEFAULT_TIMESTAMP_MS - 30 * DAY_MS),
        _demo_data("1.1", ["Ada", "Grace", "Linus"], DEFAULT_TIMESTAMP_MS),
        _demo_tool("0.9", ["libdemo 1.*"], DEFAULT_TIMESTAMP_MS - 30 * DAY_MS),
        _demo_tool("1.0", ["demo-data >=1.1", "libdemo >=2,<3"], DEFAULT_TIMESTAMP_MS),
        PackageSpec(
            name="demo-extras",
            version="0.3",
            depends=["demo-tool"],
            files={"share/demo-extras/README": b"Extra material the demo does not mirror.\n"},
            summary="A package the demo whitelist leaves out",
        ),
    ]


def _libdemo(version: str, timestamp: int, constrains: list[str] | None = None) -> PackageSpec:
    script = (
        "# Shell library: source this file, then call demo_greet NAME.\n"
        "demo_greet() {\n"
        f"    printf 'Hello, %s (libdemo {version})\\n' \"$1\"\n"
        "}\n"
    )
    return PackageSpec(
        name="libdemo",
        version=version,
        build="h0_0",
        subdir="linux-64",
        constrains=constrains or [],
        files={"lib/libdemo/greet.sh": script.encode()},
        timestamp=timestamp,
        summary="Shell library that prints greetings",
    )


def _demo_data(version: str, names: list[str], timestamp: int) -> PackageSpec:
    return PackageSpec(
        name="demo-data",
        version=version,
        files={"share/demo-data/names.txt": "".join(f"{name}\n" for name in names).encode()},
        timestamp=timestamp,
        summary="Names for demo-tool to greet",
    )


def _demo_tool(version: str, depends: list[str], timestamp: int) -> PackageSpec:
    script = (
        "#!/bin/sh\n"
        "# Greet every name listed by demo-data, using libdemo.\n"
        'prefix=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)\n'
        '. "$prefix/lib/libdemo/greet.sh"\n'
        "while IFS= read -r name; do\n"
        '    demo_greet "$name"\n'
        'done < "$prefix/share/demo-data/names.txt"\n'
    )
    return PackageSpec(
        name="demo-tool",
        version=version,
        build="h0_0",
        subdir="linux-64",
        depends=depends,
        files={"bin/demo-tool": script.encode()},
        executables={"bin/demo-tool"},
        test_commands=["demo-tool"],
        timestamp=timestamp,
        summary="Command that greets the names from demo-data",
    )


def _subdirs_to_index(channel_dir: Path, subdirs: Iterable[str] | None) -> list[str]:
    if subdirs is not None:
        found = list(subdirs)
    elif channel_dir.is_dir():
        found = [
            child.name
            for child in channel_dir.iterdir()
            if child.is_dir() and SUBDIR_PATTERN.match(child.name) and _has_packages(child)
        ]
    else:
        found = []

    for subdir in found:
        if not SUBDIR_PATTERN.match(subdir):
            raise ValueError(
                f"{subdir!r} is not a conda subdir; use names such as linux-64 or noarch"
            )
    return sorted(set(found) | {"noarch"})


def _has_packages(folder: Path) -> bool:
    return any(
        child.is_file() and child.name.endswith(tuple(FORMATS.values()))
        for child in folder.iterdir()
    )


def _index_subdir(subdir_dir: Path, subdir: str) -> None:
    subdir_dir.mkdir(parents=True, exist_ok=True)
    repodata = repodata_for(subdir_dir, subdir)
    data = json.dumps(repodata, indent=2, sort_keys=True).encode()

    atomic_write_bytes(subdir_dir / "repodata.json", data)
    atomic_write_bytes(subdir_dir / "repodata.json.zst", zstandard.ZstdCompressor().compress(data))
    atomic_write_bytes(subdir_dir / "repodata.json.bz2", bz2.compress(data, 9))
    logger.info(
        "indexed %s: %d .tar.bz2 and %d .conda records",
        subdir_dir,
        len(repodata["packages"]),
        len(repodata["packages.conda"]),
    )


def _read_index_json(path: Path) -> dict[str, Any]:
    try:
        with closing(stream_conda_info(path)) as members:
            for tar, member in members:
                if member.name == "info/index.json":
                    index = json.load(tar.extractfile(member))
                    break
            else:
                raise ValueError(f"{path} has no info/index.json; it is not a conda package")
    except UNREADABLE_PACKAGE_ERRORS as exc:
        raise ValueError(f"cannot read info/index.json from {path}: {exc}") from exc

    if not isinstance(index, dict):
        raise ValueError(f"info/index.json in {path} is not a JSON object")
    return index
