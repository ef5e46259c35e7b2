"""Atomic file writes: a reader sees the old bytes or the new ones, never a mix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, *, only_if_changed: bool = True) -> bool:
    """Write `data` to `path` through a temporary file and a rename.

    Returns False without touching the file when it already holds exactly
    `data` and `only_if_changed` is set, so unchanged indexes keep their
    modification time and ETag.
    """
    path = Path(path)
    if only_if_changed and path.is_file() and path.stat().st_size == len(data):
        if path.read_bytes() == data:
            return False

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return True


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry so a rename survives a power loss."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
