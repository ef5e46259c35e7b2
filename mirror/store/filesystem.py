"""Content-addressed blob store on a local filesystem.

Blobs live at `<root>/<aa>/<bb>/<sha256>`. Files enter only through a
rename of a verified temporary file, so a blob path always holds complete,
verified bytes. Channel views are hard links, which cost no space; where
the channel folder is on another filesystem a symbolic link is used.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

from mirror.errors import StoreError
from mirror.store.atomic import fsync_directory

logger = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class FilesystemBlobStore:
    """A blob store in one local folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not SHA256_PATTERN.match(sha256):
            raise StoreError(f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def add_verified_file(self, source: Path, sha256: str) -> Path:
        target = self.path_for(sha256)
        if target.is_file():
            Path(source).unlink(missing_ok=True)
            return target

        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        try:
            os.replace(source, target)
        except OSError as exc:
            raise StoreError(f"could not move {source} into the store at {target}: {exc}") from exc
        fsync_directory(target.parent)
        logger.debug("stored blob %s", sha256)
        return target

    def link(self, sha256: str, destination: Path) -> None:
        source = self.path_for(sha256)
        if not source.is_file():
            raise StoreError(f"blob {sha256} is not in the store at {source}; run 'mirror sync' again")

        destination = Path(destination)
        if destination.is_file() and _same_file(source, destination):
            return

        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.link")
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise StoreError(f"could not link {destination} to blob {sha256}: {exc}") from exc
            os.symlink(source, temporary)
        os.replace(temporary, destination)

    def iter_blobs(self):
        """Yield the sha256 of every stored blob."""
        for path in self.root.glob("??/??/*"):
            if SHA256_PATTERN.match(path.name):
                yield path.name


def _same_file(left: Path, right: Path) -> bool:
    try:
        return os.path.samefile(left, right)
    except OSError:
        return False
