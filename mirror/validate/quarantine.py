"""Build a local channel from candidate package files, so checks can solve and install against it.

The validation job downloads an upstream's files into the blob store and
then calls `build_quarantine_channel` with all of them. The result is a
plain conda channel folder. Each subdir has a `repodata.json` with the
upstream records copied verbatim. Each package file is a hard link to its
blob, or a symbolic link when the blob is on another file system. Clients
such as py-rattler read the channel through a `file://` URL.

Rebuilding with the same files changes nothing on disk. Rebuilding with
other files replaces the listing and removes links that are no longer
listed, so the channel always shows exactly the files of the last call.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirror.config.schema import SUBDIR_PATTERN
from mirror.store.atomic import atomic_write_bytes, fsync_directory

logger = logging.getLogger(__name__)

CONDA_EXTENSION = ".conda"
TAR_BZ2_EXTENSION = ".tar.bz2"
PACKAGE_EXTENSIONS = (CONDA_EXTENSION, TAR_BZ2_EXTENSION)


@dataclass(frozen=True)
class QuarantineFile:
    """One candidate package file: its subdir and name, upstream record and blob."""

    subdir: str
    filename: str
    record: Mapping[str, Any]
    blob_path: Path


def build_quarantine_channel(root: Path, files: Iterable[QuarantineFile]) -> Path:
    """Write a channel of `files` under `root` and return `root`.

    `root/noarch/` always exists because conda clients request noarch for
    every platform. Each listed subdir gets its package links first and its
    `repodata.json` second, so a reader never sees a record whose file is
    missing. Raises ValueError for an invalid subdir or file name, or for one
    file name given twice with different records, and FileNotFoundError for
    a missing blob.
    """
    root = Path(root)
    by_subdir = _group_by_subdir(files)
    by_subdir.setdefault("noarch", {})
    for stale in _existing_subdirs(root) - set(by_subdir):
        by_subdir[stale] = {}

    for subdir, listed in sorted(by_subdir.items()):
        subdir_dir = root / subdir
        subdir_dir.mkdir(parents=True, exist_ok=True)
        for item in listed.values():
            _link_blob(item.blob_path, subdir_dir / item.filename)
        _remove_unlisted(subdir_dir, set(listed))
        _write_repodata(subdir_dir, subdir, listed)

    logger.info(
        "built quarantine channel %s with %d files in %d subdirs",
        root,
        sum(len(listed) for listed in by_subdir.values()),
        len(by_subdir),
    )
    return root


def _group_by_subdir(files: Iterable[QuarantineFile]) -> dict[str, dict[str, QuarantineFile]]:
    grouped: dict[str, dict[str, QuarantineFile]] = defaultdict(dict)
    for item in files:
        _validate(item)
        known = grouped[item.subdir].get(item.filename)
        if known is not None and dict(known.record) != dict(item.record):
            raise ValueError(
                f"{item.subdir}/{item.filename} is given twice with different records; "
                "pass each file once with its upstream record"
            )
        grouped[item.subdir][item.filename] = item
    return dict(grouped)


def _validate(item: QuarantineFile) -> None:
    if not SUBDIR_PATTERN.match(item.subdir):
        raise ValueError(
            f"invalid subdir {item.subdir!r} for {item.filename!r}; "
            "use names such as linux-64 or noarch"
        )

    # The name becomes a path inside the channel, so it must stay one plain file name.
    name = item.filename
    unsafe = "/" in name or "\\" in name or "\x00" in name or name.startswith(".")
    if unsafe or not name.endswith(PACKAGE_EXTENSIONS):
        raise ValueError(
            f"invalid package file name {name!r} in {item.subdir}: "
            "it must be a plain .conda or .tar.bz2 file name"
        )

    if not Path(item.blob_path).is_file():
        raise FileNotFoundError(
            f"blob {item.blob_path} for {item.subdir}/{name} not found; download the file again"
        )


def _existing_subdirs(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {
        child.name
        for child in root.iterdir()
        if child.is_dir() and (child / "repodata.json").is_file()
    }


def _link_blob(blob: Path, destination: Path) -> None:
    """Point `destination` at `blob`, replacing what was there in one rename."""
    blob = Path(blob).resolve()
    if _already_linked(blob, destination):
        return

    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.link")
    try:
        os.link(blob, temporary)
    except OSError as exc:
        # EXDEV (another file system) and EPERM (hard links not allowed) end up here.
        logger.debug("cannot hard-link %s (%s), using a symbolic link", blob, exc)
        os.symlink(blob, temporary)
    try:
        os.replace(temporary, destination)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(destination.parent)


def _already_linked(blob: Path, destination: Path) -> bool:
    try:
        return destination.samefile(blob)
    except OSError:
        return False


def _remove_unlisted(subdir_dir: Path, listed: set[str]) -> None:
    for child in subdir_dir.iterdir():
        if child.name.endswith(PACKAGE_EXTENSIONS) and child.name not in listed:
            child.unlink()
            logger.debug("removed %s, which the quarantine channel no longer lists", child)


def _write_repodata(subdir_dir: Path, subdir: str, listed: Mapping[str, QuarantineFile]) -> None:
    records = {name: dict(item.record) for name, item in sorted(listed.items())}
    tar_bz2 = {name: record for name, record in records.items() if name.endswith(TAR_BZ2_EXTENSION)}
    conda = {name: record for name, record in records.items() if name.endswith(CONDA_EXTENSION)}
    repodata = {
        "info": {"subdir": subdir},
        "packages": tar_bz2,
        "packages.conda": conda,
        "removed": [],
        "repodata_version": 1,
    }
    data = json.dumps(repodata, indent=1, sort_keys=True).encode()
    atomic_write_bytes(subdir_dir / "repodata.json", data)
