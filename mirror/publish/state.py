"""The publisher's record of what it put in a channel folder.

The state file lists, per subdir, every package file the publisher linked
(with the blob sha256) and, for files no longer in the index, when they
left it. Only files listed here are ever deleted, so files that someone
else placed in the channel folder are left alone. An unreadable state file
is treated as empty: nothing is deleted until the publisher has linked
the files again and recorded them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.config.schema import SUBDIR_PATTERN
from mirror.publish.repodata import is_package_filename
from mirror.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

# A leading dot keeps the file out of the server's routes, which serve no hidden names.
STATE_FILENAME = ".publish-state.json"
STATE_VERSION = 1


@dataclass
class PublishedEntry:
    """One package file the publisher linked into a subdir."""

    sha256: str
    left_index_at: float | None = None


@dataclass
class PublishState:
    """Subdirs with published indexes, and subdir -> file name -> entry."""

    subdirs: set[str] = field(default_factory=set)
    files: dict[str, dict[str, PublishedEntry]] = field(default_factory=dict)

    def entry(self, subdir: str, filename: str) -> PublishedEntry | None:
        return self.files.get(subdir, {}).get(filename)

    def record_link(self, subdir: str, filename: str, sha256: str) -> None:
        self.files.setdefault(subdir, {})[filename] = PublishedEntry(sha256)

    def forget(self, subdir: str, filename: str) -> None:
        entries = self.files.get(subdir, {})
        entries.pop(filename, None)
        if not entries:
            self.files.pop(subdir, None)


def load_state(channel_dir: Path) -> PublishState:
    """Read a channel folder's state file; a missing or invalid file gives an empty state."""
    path = channel_dir / STATE_FILENAME
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return PublishState()
    except (OSError, ValueError) as exc:
        logger.warning(
            "publish state %s could not be read (%s); no old package file is deleted in this run",
            path,
            exc,
        )
        return PublishState()

    if not isinstance(document, dict) or document.get("state_version") != STATE_VERSION:
        logger.warning("publish state %s has an unknown layout; it is ignored", path)
        return PublishState()
    return _parse_state(document)


def save_state(channel_dir: Path, state: PublishState) -> bool:
    """Write the state file atomically; return whether its bytes changed."""
    document = {
        "state_version": STATE_VERSION,
        "subdirs": sorted(state.subdirs),
        "files": {
            subdir: {
                filename: {"sha256": entry.sha256, "left_index_at": entry.left_index_at}
                for filename, entry in entries.items()
            }
            for subdir, entries in state.files.items()
        },
    }
    data = json.dumps(document, sort_keys=True, indent=1).encode("ascii")
    return atomic_write_bytes(channel_dir / STATE_FILENAME, data)


def _parse_state(document: dict[str, Any]) -> PublishState:
    # Entries that could not have been published (bad subdir or file name) are dropped, so a
    # damaged state file can never make the publisher delete anything else.
    state = PublishState()
    for subdir in document.get("subdirs") or []:
        if isinstance(subdir, str) and SUBDIR_PATTERN.fullmatch(subdir):
            state.subdirs.add(subdir)

    files = document.get("files")
    for subdir, entries in files.items() if isinstance(files, dict) else []:
        if not SUBDIR_PATTERN.fullmatch(subdir) or not isinstance(entries, dict):
            continue
        for filename, entry in entries.items():
            parsed = _parse_entry(filename, entry)
            if parsed is not None:
                state.files.setdefault(subdir, {})[filename] = parsed
    return state


def _parse_entry(filename: str, entry: Any) -> PublishedEntry | None:
    if not is_package_filename(filename) or not isinstance(entry, dict):
        return None
    sha256 = entry.get("sha256")
    left_index_at = entry.get("left_index_at")
    if not isinstance(sha256, str):
        return None
    if left_index_at is not None and not isinstance(left_index_at, (int, float)):
        left_index_at = None
    return PublishedEntry(sha256, left_index_at)
