"""Build `current_repodata.json`: the newest version of each package plus what it needs.

conda reads this smaller index first and falls back to the full
`repodata.json` when it cannot solve with it. For every package name the
records of its newest version are kept (every build and both formats).
Then, for each dependency of a kept record that no kept record of that
name satisfies, the newest version that does satisfy it is added, and its
own dependencies are followed in turn.

Records are the same objects as in the full repodata, so they render to
the same bytes. Dependencies are resolved within the subdir only.
NOTE: a platform package whose dependency is satisfied only by an older
noarch version does not pull that version into the noarch index.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rattler import BuildString, MatchSpec, PackageRecord, Version
from rattler.exceptions import (
    InvalidMatchSpecError,
    InvalidPackageNameError,
    InvalidVersionError,
    InvalidVersionSpecError,
)

from mirror.publish.ordering import record_version

logger = logging.getLogger(__name__)

SPEC_ERRORS = (InvalidMatchSpecError, InvalidPackageNameError, InvalidVersionSpecError)
PACKAGE_SECTIONS = ("packages", "packages.conda")


@dataclass(eq=False)
class _Candidate:
    """One record of the full repodata, with what is needed to match specs against it."""

    section: str
    filename: str
    record: Mapping[str, Any]
    version: Version

    @cached_property
    def package_record(self) -> PackageRecord | None:
        """Return the fields a dependency spec can test, or None when rattler rejects them."""
        build_number = self.record.get("build_number", 0)
        try:
            return PackageRecord(
                name=str(self.record["name"]),
                version=str(self.record["version"]),
                build=_build_string(str(self.record.get("build", ""))),
                build_number=build_number if isinstance(build_number, int) else 0,
                subdir=str(self.record.get("subdir", "")),
            )
        except (InvalidPackageNameError, InvalidVersionError, ValueError) as exc:
            logger.debug("%s cannot be matched against dependency specs: %s", self.filename, exc)
            return None

    def satisfies(self, spec: MatchSpec) -> bool:
        package_record = self.package_record
        return package_record is not None and spec.matches(package_record)


@dataclass
class _Selection:
    selected: set[_Candidate] = field(default_factory=set)
    selected_by_name: dict[str, list[_Candidate]] = field(default_factory=lambda: defaultdict(list))
    queue: deque[_Candidate] = field(default_factory=deque)

    def add(self, candidate: _Candidate) -> None:
        if candidate in self.selected:
            return
        self.selected.add(candidate)
        self.selected_by_name[candidate.record["name"].lower()].append(candidate)
        self.queue.append(candidate)


def _build_string(text: str) -> BuildString:
    # Upstream records are published as they are, so an odd build string must not stop matching.
    try:
        return BuildString(text)
    except ValueError:
        return BuildString.new_unchecked(text)


def build_current_repodata(repodata: Mapping[str, Any]) -> dict[str, Any]:
    """Return the current_repodata document for a full repodata document."""
    by_name = _candidates_by_name(repodata)
    selection = _Selection()

    for candidates in by_name.values():
        newest = max(candidate.version for candidate in candidates)
        for candidate in candidates:
            if candidate.version == newest:
                selection.add(candidate)

    while selection.queue:
        candidate = selection.queue.popleft()
        for spec in _dependency_specs(candidate):
            _add_newest_match(spec, by_name, selection)

    current: dict[str, Any] = {
        key: value for key, value in repodata.items() if key not in PACKAGE_SECTIONS
    }
    for section in PACKAGE_SECTIONS:
        current[section] = {}
    for candidate in selection.selected:
        current[candidate.section][candidate.filename] = candidate.record
    return current


def _candidates_by_name(repodata: Mapping[str, Any]) -> dict[str, list[_Candidate]]:
    by_name: dict[str, list[_Candidate]] = defaultdict(list)
    for section in PACKAGE_SECTIONS:
        for filename, record in repodata.get(section, {}).items():
            version = record_version(record)
            name = record.get("name")
            if version is None or not isinstance(name, str):
                logger.debug(
                    "%s has no usable name or version; it is left out of current_repodata", filename
                )
                continue
            by_name[name.lower()].append(_Candidate(section, filename, record, version))
    return by_name


def _dependency_specs(candidate: _Candidate) -> list[MatchSpec]:
    specs = []
    for text in candidate.record.get("depends") or []:
        try:
            specs.append(MatchSpec(str(text), strict=False))
        except SPEC_ERRORS:
            logger.debug("skipping unparseable dependency %r of %s", text, candidate.filename)
    return specs


def _add_newest_match(
    spec: MatchSpec, by_name: Mapping[str, list[_Candidate]], selection: _Selection
) -> None:
    """Add the newest records matching `spec` unless a selected record already matches it."""
    if spec.name is None:
        return
    name = str(spec.name.normalized).lower()
    available = by_name.get(name)
    if not available:
        return
    if any(candidate.satisfies(spec) for candidate in selection.selected_by_name.get(name, [])):
        return

    matching = [candidate for candidate in available if candidate.satisfies(spec)]
    if not matching:
        return
    newest = max(candidate.version for candidate in matching)
    for candidate in matching:
        if candidate.version == newest:
            selection.add(candidate)
