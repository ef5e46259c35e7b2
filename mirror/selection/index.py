"""Read one upstream subdir's repodata without loading every record.

conda-forge's linux-64 repodata holds about 466,000 records (243 MB of
JSON), so records are never all turned into Python objects. py-rattler's
SparseRepoData indexes the file by package name and parses only the names
asked for. Raw records, published byte-for-byte as upstream wrote them,
are pulled out in one streaming pass (ijson) for just the selected files.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
from rattler import Channel, ChannelConfig, PackageFormatSelection, PackageName, SparseRepoData

logger = logging.getLogger(__name__)

RECORD_KEYS = ("packages", "packages.conda")


@dataclass
class RecordProblem:
    """A record that was skipped because it cannot be read."""

    subdir: str
    filename: str
    reason: str


@dataclass
class SubdirIndex:
    """Lazy, per-name access to one subdir's repodata.json."""

    upstream: str
    subdir: str
    path: Path
    problems: list[RecordProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        channel = Channel(self.upstream, ChannelConfig())
        self._sparse = SparseRepoData(channel, self.subdir, str(self.path))
        self._names = sorted(self._sparse.package_names())
        self._name_set = set(self._names)
        self._cache: dict[str, list[Any]] = {}
        self._removed: set[str] | None = None

    @property
    def names(self) -> list[str]:
        return self._names

    @property
    def removed(self) -> set[str]:
        """File names on the upstream `removed` list; they are never selected."""
        if self._removed is None:
            self._removed = {entry.file_name for entry in self._sparse.load_removed()}
        return self._removed

    def records(self, name: str) -> list[Any]:
        """Return every record (both formats) of package `name`, skipping unreadable ones."""
        if name not in self._name_set:
            return []
        cached = self._cache.get(name)
        if cached is not None:
            return cached

        try:
            records = self._sparse.load_records(PackageName(name), PackageFormatSelection.BOTH)
        except Exception as exc:  # rattler reports malformed JSON as OSError or its own types
            logger.warning(
                "upstream %s subdir %s: records of %s do not parse (%s); reading them one by one",
                self.upstream, self.subdir, name, exc,
            )
            records = self._load_one_by_one(name)
        self._cache[name] = records
        return records

    def raw_records(self, filenames: Collection[str]) -> dict[str, dict[str, Any]]:
        """Return the upstream JSON of the given files, exactly as upstream wrote it."""
        found: dict[str, dict[str, Any]] = {}
        for section in RECORD_KEYS:
            wanted = {name for name in filenames if _section_of(name) == section}
            if not wanted:
                continue
            for filename, record in self._iter_section(section):
                if filename in wanted and isinstance(record, dict):
                    found[filename] = record
                    wanted.discard(filename)
                    if not wanted:
                        break
        return found

    def close(self) -> None:
        self._sparse.close()

    def _iter_raw(self) -> Iterator[tuple[str, Any]]:
        for section in RECORD_KEYS:
            yield from self._iter_section(section)

    def _iter_section(self, section: str) -> Iterator[tuple[str, Any]]:
        # kvitems runs in ijson's C backend, about three times faster than
        # walking the events in Python; use_float keeps numbers as floats, not Decimals.
        with self.path.open("rb") as stream:
            yield from ijson.kvitems(stream, section, use_float=True)

    def _load_one_by_one(self, name: str) -> list[Any]:
        """Parse the records of one name separately, so one bad record costs only itself."""
        records = []
        for filename, raw in self._iter_raw():
            if not filename.startswith(name):
                continue
            if not isinstance(raw, dict):
                self._record_problem(filename, f"record is {type(raw).__name__}, not an object")
                continue
            if str(raw.get("name", "")).lower() != name:
                continue
            try:
                records.extend(_parse_single(self.upstream, self.subdir, filename, raw))
            except Exception as exc:
                self._record_problem(filename, f"record does not parse: {exc}")
        return records

    def _record_problem(self, filename: str, reason: str) -> None:
        logger.error("upstream %s subdir %s: skipped %s: %s", self.upstream, self.subdir, filename, reason)
        self.problems.append(RecordProblem(self.subdir, filename, reason))


def _section_of(filename: str) -> str:
    return "packages.conda" if filename.endswith(".conda") else "packages"


def _parse_single(upstream: str, subdir: str, filename: str, raw: dict[str, Any]) -> list[Any]:
    section = "packages.conda" if filename.endswith(".conda") else "packages"
    document = {"info": {"subdir": subdir}, section: {filename: raw}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.flush()
        sparse = SparseRepoData(Channel(upstream, ChannelConfig()), subdir, handle.name)
        try:
            return sparse.load_records(PackageName(raw["name"]), PackageFormatSelection.BOTH)
        finally:
            sparse.close()
