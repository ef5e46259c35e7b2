"""The interface every blob store implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Content-addressed storage of verified package files, keyed by sha256."""

    def has(self, sha256: str) -> bool:
        """Return whether a blob with this sha256 is stored."""

    def path_for(self, sha256: str) -> Path:
        """Return the local path of a blob; it may not exist yet."""

    def add_verified_file(self, source: Path, sha256: str) -> Path:
        """Move an already verified file into the store under its sha256.

        The source must be on the same filesystem; it is consumed. When the
        blob exists already the source is deleted and the stored blob kept.
        """

    def link(self, sha256: str, destination: Path) -> None:
        """Make `destination` refer to the blob without copying its bytes."""
