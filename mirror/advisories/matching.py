"""Match conda packages against the imported advisories.

OSV has no conda ecosystem, so a conda package is looked up under the
PyPI names it may repackage. By default that is its own name in PEP 503
form. `CONDA_TO_PYPI` lists the conda names whose PyPI names differ
(pytorch is torch on PyPI). An entry replaces the default, and an empty
entry turns the lookup off for a conda name that only shares its name
with an unrelated PyPI project. An extra YAML file can add or override
entries, in the form `conda-name: pypi-name` or `conda-name: [name, ...]`.

NOTE: conda packages of C libraries (curl, zlib) are also looked up on
PyPI under their own names, so an advisory about an unrelated PyPI
project of the same name would match them. Add an empty entry for such a
name when it happens.

`AdvisoryIndex.load` takes an in-memory snapshot of the PyPI ranges, so
matching during validation never queries the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mirror.advisories.models import VERSIONS_RANGE, Advisory, AffectedRange
from mirror.advisories.osv import as_utc, pypi_key
from mirror.advisories.versions import affects
from mirror.errors import ConfigError

logger = logging.getLogger(__name__)

PYPI = "PyPI"

# conda-forge and Anaconda names whose PyPI project has another name.
CONDA_TO_PYPI: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch",),
    "pytorch-cpu": ("torch",),
    "pytorch-gpu": ("torch",),
    "py-opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "tensorflow-base": ("tensorflow",),
    "tensorflow-cpu": ("tensorflow", "tensorflow-cpu"),
    "tensorflow-gpu": ("tensorflow", "tensorflow-gpu"),
    "matplotlib-base": ("matplotlib",),
    "dask-core": ("dask",),
    "msgpack-python": ("msgpack",),
    "pytables": ("tables",),
    "py-xgboost": ("xgboost",),
    "py-lief": ("lief",),
    "pyqt": ("pyqt5",),
    "python-kubernetes": ("kubernetes",),
    "python-graphviz": ("graphviz",),
    "python-lmdb": ("lmdb",),
    "python-xxhash": ("xxhash",),
    "python-gssapi": ("gssapi",),
    "mlflow-skinny": ("mlflow", "mlflow-skinny"),
}


@dataclass
class Match:
    """One advisory that affects a conda package version, and the range that matched."""

    advisory_id: str
    aliases: list[str]
    summary: str | None
    severity: str | None
    severity_source: str | None
    ecosystem: str
    package: str
    affected: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def as_evidence(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Advisory:
    id: str
    aliases: list[str]
    summary: str | None
    severity: str | None
    severity_source: str | None


@dataclass(frozen=True)
class _Range:
    advisory: _Advisory
    ecosystem: str
    package: str
    range_type: str
    events: list[dict[str, str]]
    versions: list[str]


class AdvisoryIndex:
    """An in-memory snapshot of the advisory database, keyed by ecosystem and package name.

    `fingerprint` changes whenever an advisory is added, modified or
    withdrawn, or the name table changes, so check results that embed it
    in their version are recomputed after such an import.
    """

    def __init__(
        self,
        ranges: Sequence[_Range],
        *,
        fingerprint: str,
        name_map: Mapping[str, Sequence[str]] | None = None,
    ):
        self.fingerprint = fingerprint
        self.name_map = {_conda_key(name): tuple(targets) for name, targets in (name_map or CONDA_TO_PYPI).items()}
        self._ranges: dict[tuple[str, str], list[_Range]] = defaultdict(list)
        for item in ranges:
            self._ranges[(item.ecosystem, _lookup_key(item.ecosystem, item.package))].append(item)
        self.advisory_count = len({item.advisory.id for item in ranges})

    @classmethod
    def load(cls, session: Session, *, extra_names: Path | Mapping[str, Any] | None = None) -> AdvisoryIndex:
        """Read the PyPI ranges of every advisory that is not withdrawn.

        `extra_names` is a YAML file path or a mapping with entries that
        add to or override `CONDA_TO_PYPI`.
        """
        name_map: dict[str, tuple[str, ...]] = dict(CONDA_TO_PYPI)
        if extra_names is not None:
            name_map.update(load_name_map(extra_names))

        advisories = {
            row.id: row for row in session.scalars(select(Advisory).where(Advisory.withdrawn.is_(None)))
        }
        rows = session.scalars(
            select(AffectedRange).where(AffectedRange.ecosystem == PYPI).order_by(AffectedRange.id)
        )
        ranges = [_snapshot(row, advisories[row.advisory_id]) for row in rows if row.advisory_id in advisories]
        fingerprint = _fingerprint({item.advisory.id for item in ranges}, advisories, name_map)
        logger.info(
            "advisory index loaded: %d advisories with %d PyPI ranges, fingerprint %s",
            len({item.advisory.id for item in ranges}), len(ranges), fingerprint,
        )
        return cls(ranges, fingerprint=fingerprint, name_map=name_map)

    def candidates(self, conda_name: str) -> list[tuple[str, str]]:
        """Return the (ecosystem, package name) pairs that a conda package name is looked up under."""
        targets = self.name_map.get(_conda_key(conda_name))
        if targets is None:
            targets = (conda_name,)
        return [(PYPI, pypi_key(target)) for target in dict.fromkeys(targets)]

    def match(self, name: str, version: str) -> list[Match]:
        """Return the advisories that affect conda package `name` at `version`, one per advisory and package."""
        found: dict[tuple[str, str], Match] = {}
        for ecosystem, key in self.candidates(name):
            for item in self._ranges.get((ecosystem, key), ()):
                if not affects(version, item.range_type, item.ecosystem, item.events, item.versions):
                    continue
                _record_match(found, item)
        return sorted(found.values(), key=lambda match: match.advisory_id)

    def advisories_for(self, name: str) -> list[Match]:
        """Return every advisory listed for a conda package name's candidates, whatever the version."""
        found: dict[tuple[str, str], Match] = {}
        for ecosystem, key in self.candidates(name):
            for item in self._ranges.get((ecosystem, key), ()):
                _record_match(found, item)
        return sorted(found.values(), key=lambda match: match.advisory_id)


def load_name_map(source: Path | Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Read extra conda-to-PyPI name entries from a YAML file or a mapping, or raise ConfigError."""
    where = str(source) if isinstance(source, Path) else "extra name map"
    data: Any = source
    if isinstance(source, Path):
        try:
            data = YAML(typ="safe").load(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, YAMLError) as exc:
            raise ConfigError(f"{where}: cannot read the conda-to-PyPI name map: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: the name map must be a mapping of conda name to PyPI name(s)")

    entries: dict[str, tuple[str, ...]] = {}
    for conda_name, targets in data.items():
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(conda_name, str) or not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(
                f"{where}: entry {conda_name!r}: {targets!r} is invalid; write `conda-name: pypi-name` "
                "or `conda-name: [pypi-name, ...]`"
            )
        entries[conda_name] = tuple(targets)
    return entries


def describe_range(item_type: str, events: Sequence[dict[str, str]], versions: Sequence[str]) -> str:
    """Describe one range for a reviewer, such as "ECOSYSTEM >=1.0, <2.0.1"."""
    if item_type == VERSIONS_RANGE:
        return "versions " + ", ".join(versions)
    intervals: list[str] = []
    lower: str | None = None
    for event in events:
        ((kind, value),) = event.items()
        if kind == "introduced":
            lower = "" if value == "0" else f">={value}"
            continue
        if kind in ("fixed", "last_affected"):
            upper = f"<{value}" if kind == "fixed" else f"<={value}"
            intervals.append(", ".join(part for part in (lower, upper) if part))
            lower = None
    if lower is not None:
        intervals.append(lower or "all versions")
    return f"{item_type} " + " or ".join(intervals)


def _record_match(found: dict[tuple[str, str], Match], item: _Range) -> None:
    key = (item.advisory.id, item.package)
    match = found.get(key)
    if match is None:
        advisory = item.advisory
        match = Match(
            advisory_id=advisory.id,
            aliases=list(advisory.aliases),
            summary=advisory.summary,
            severity=advisory.severity,
            severity_source=advisory.severity_source,
            ecosystem=item.ecosystem,
            package=item.package,
        )
        found[key] = match
    match.affected.append(describe_range(item.range_type, item.events, item.versions))
    for event in item.events:
        if "fixed" in event and event["fixed"] not in match.fixed:
            match.fixed.append(event["fixed"])


def _snapshot(row: AffectedRange, advisory: Advisory) -> _Range:
    return _Range(
        advisory=_Advisory(
            id=advisory.id,
            aliases=list(advisory.aliases or []),
            summary=advisory.summary,
            severity=advisory.severity,
            severity_source=advisory.severity_source,
        ),
        ecosystem=row.ecosystem,
        package=row.package_name,
        range_type=row.range_type,
        events=list(row.events or []),
        versions=list(row.versions or []),
    )


def _fingerprint(
    matched_ids: set[str], advisories: Mapping[str, Advisory], name_map: Mapping[str, Sequence[str]]
) -> str:
    # Withdrawn advisories are left out of `advisories`, so withdrawing one
    # changes the fingerprint as well.
    digest = hashlib.sha256()
    for advisory_id in sorted(matched_ids):
        modified = as_utc(advisories[advisory_id].modified).isoformat()
        digest.update(f"{advisory_id}\t{modified}\n".encode())
    digest.update(json.dumps({key: list(value) for key, value in sorted(name_map.items())}).encode())
    return digest.hexdigest()[:16]


def _conda_key(name: str) -> str:
    return name.strip().lower()


def _lookup_key(ecosystem: str, name: str) -> str:
    return pypi_key(name) if ecosystem == PYPI else name
