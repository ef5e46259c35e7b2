"""Keep the last whitelist that loaded in force while the file on disk changes.

The service polls the whitelist file (size and modification time first,
then a sha256 of its bytes). A file that loads replaces the entries in
force. A file that does not load leaves them as they are, and its error,
which names the file and line, is logged once and stored in the
`whitelist_states` row so that `mirror status` and the dashboard can show
it. The stored entries also let a restarted service go on with the last
good whitelist while the file is still broken.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from mirror.catalog.models import utcnow
from mirror.catalog.session import Catalog
from mirror.config.load import load_whitelist
from mirror.config.schema import MirrorConfig, WhitelistEntry
from mirror.errors import ConfigError
from mirror.scheduler.models import WhitelistState

logger = logging.getLogger(__name__)

STATE_ROW_ID = 1


@dataclass(frozen=True)
class WhitelistStatus:
    """Whitelist summary for `mirror status`."""

    path: str
    entries: int
    loaded_at: datetime | None
    error: str | None


class WhitelistWatcher:
    """The whitelist in force, reloaded from the file when it changes."""

    def __init__(self, config: MirrorConfig, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.path = Path(config.whitelist)
        self._entries: list[WhitelistEntry] | None = None
        self._signature: tuple[int, int] | None = None
        self._sha256: str | None = None

    @property
    def entries(self) -> list[WhitelistEntry] | None:
        """The entries in force, or None when no whitelist has ever loaded."""
        return self._entries

    def start(self) -> None:
        """Load the stored last good whitelist, then the file, which wins when it is valid."""
        self._entries = self._stored_entries()
        self.check()

    def check(self) -> bool:
        """Reload the file if it changed; return whether the entries in force changed."""
        try:
            stat = self.path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            data = None if signature == self._signature else self.path.read_bytes()
        except OSError as exc:
            return self._reject(None, f"{self.path}: cannot read the whitelist: {exc.strerror}")
        if data is None:
            return False

        self._signature = signature
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 == self._sha256:
            return False
        self._sha256 = sha256

        try:
            entries = load_whitelist(self.config, self.path)
        except ConfigError as exc:
            return self._reject(sha256, str(exc))
        return self._accept(sha256, entries)

    def _accept(self, sha256: str, entries: list[WhitelistEntry]) -> bool:
        changed = entries != self._entries
        self._entries = entries
        with self.catalog.session() as session:
            row = self._row(session)
            row.path = str(self.path)
            row.sha256 = sha256
            row.entries = [entry.model_dump(mode="json") for entry in entries]
            row.loaded_at = utcnow()
            row.error = None
            row.error_sha256 = None
            row.checked_at = utcnow()
        logger.info("whitelist %s loaded: %d entries (sha256 %s)", self.path, len(entries), sha256[:12])
        return changed

    def _reject(self, sha256: str | None, error: str) -> bool:
        with self.catalog.session() as session:
            row = self._row(session)
            repeated = row.error == error
            row.path = str(self.path)
            row.error = error
            row.error_sha256 = sha256
            row.checked_at = utcnow()
        if not repeated:
            kept = "no whitelist is in force" if self._entries is None else f"keeping the last good one ({len(self._entries)} entries)"
            logger.error("whitelist %s is invalid; %s. Fix the file; it is checked again when it changes:\n%s", self.path, kept, error)
        if sha256 is None:
            self._signature = None
            self._sha256 = None
        return False

    def _stored_entries(self) -> list[WhitelistEntry] | None:
        with self.catalog.session() as session:
            row = session.get(WhitelistState, STATE_ROW_ID)
            if row is None or row.loaded_at is None:
                return None
            stored = list(row.entries or [])
        try:
            return [WhitelistEntry.model_validate(item) for item in stored]
        except ValidationError as exc:
            logger.warning("the stored last good whitelist no longer validates (%s); it is not used", exc)
            return None

    @staticmethod
    def _row(session) -> WhitelistState:
        row = session.get(WhitelistState, STATE_ROW_ID)
        if row is None:
            row = WhitelistState(id=STATE_ROW_ID, path="", entries=[])
            session.add(row)
        return row


def whitelist_status(catalog: Catalog) -> WhitelistStatus | None:
    """Return the stored whitelist state, or None when no service has checked the whitelist yet."""
    with catalog.session() as session:
        row = session.get(WhitelistState, STATE_ROW_ID)
        if row is None:
            return None
        return WhitelistStatus(row.path, len(row.entries or []), row.loaded_at, row.error)
