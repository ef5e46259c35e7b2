"""Choose the upstream files that one whitelist entry selects.

Rules, in order of strength:
1. `exclude` always wins, and files on upstream's `removed` list are never chosen.
2. A name the entry lists explicitly keeps the user's constraint: dependency
   closure never adds a version of it that the user's own specs reject.
3. With `dependencies: true`, every record that satisfies a dependency of a
   chosen record is chosen too, transitively. An arch subdir's record finds
   its dependencies in that subdir and `noarch`. A `noarch` record installs
   anywhere, so it finds them in every subdir of the entry.
A dependency that nothing allowed satisfies is reported, never widened.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rattler import MatchSpec

from mirror.config.schema import WhitelistEntry
from mirror.selection.index import SubdirIndex
from mirror.selection.specs import ParsedSpec, parse_spec

logger = logging.getLogger(__name__)

PRE_RELEASE = re.compile(r"(a|b|rc|alpha|beta|dev|pre)\d*", re.IGNORECASE)


@dataclass(frozen=True)
class Chosen:
    """One chosen file and why it was chosen."""

    subdir: str
    filename: str
    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class Unresolved:
    """A dependency of a chosen file that no allowed record satisfies."""

    subdir: str
    filename: str
    dependency: str
    reason: str


@dataclass
class Selection:
    chosen: dict[tuple[str, str], Chosen] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    unmatched_specs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def select_entry(entry: WhitelistEntry, subdirs: list[str], indexes: dict[str, SubdirIndex]) -> Selection:
    """Return the files of `indexes` that `entry` selects, within `subdirs`."""
    includes = [parse_spec(text) for text in entry.packages]
    excludes = [parse_spec(text) for text in entry.exclude]
    pinned = _explicit_constraints(includes)
    selection = Selection()
    queue: deque[tuple[str, Any]] = deque()

    def allowed(subdir: str, record: Any) -> bool:
        if record.file_name in indexes[subdir].removed:
            return False
        return not any(spec.matches(record) for spec in excludes)

    def choose(subdir: str, record: Any, reason: str) -> None:
        key = (subdir, record.file_name)
        if key in selection.chosen:
            return
        selection.chosen[key] = Chosen(subdir, record.file_name, record.name.normalized, str(record.version), reason)
        queue.append((subdir, record))

    # Direct matches of the user's specs.
    for spec in includes:
        found = False
        for subdir in subdirs:
            index = indexes[subdir]
            for name in spec.names_in(index.names):
                for record in index.records(name):
                    if spec.matches(record) and allowed(subdir, record):
                        choose(subdir, record, f"whitelist: {spec.text}")
                        found = True
        if not found:
            selection.unmatched_specs.append(spec.text)
        _warn_pre_releases(spec, selection)

    # Transitive closure of the dependencies. Many records share dependency
    # strings, so each (dependency, subdirs) pair is resolved once.
    resolved: dict[tuple[str, tuple[str, ...]], tuple[list, str | None]] = {}
    while entry.dependencies and queue:
        subdir, record = queue.popleft()
        targets = tuple(subdirs) if subdir == "noarch" else tuple(s for s in (subdir, "noarch") if s in subdirs)
        for dependency in record.depends:
            if dependency.startswith("__"):
                continue  # virtual packages such as __glibc are provided by the client machine
            key = (dependency, targets)
            first_time = key not in resolved
            if first_time:
                resolved[key] = _resolve(dependency, targets, indexes, pinned, allowed)
            usable, problem = resolved[key]
            # Choosing is idempotent, so a pair already applied adds nothing new.
            for target, candidate in usable if first_time else ():
                choose(target, candidate, f"dependency of {record.file_name}: {dependency}")
            if problem is not None:
                selection.unresolved.append(Unresolved(subdir, record.file_name, dependency, problem))

    return selection


def _resolve(dependency, targets, indexes, pinned, allowed) -> tuple[list, str | None]:
    """Return the allowed records that satisfy `dependency`, and why there are none if so."""
    try:
        spec = MatchSpec(dependency, strict=False)
    except Exception as exc:  # rattler raises InvalidMatchSpecError
        return [], f"unparsable dependency: {exc}"

    name = str(spec.name.normalized).lower()
    candidates = [
        (target, candidate)
        for target in targets
        for candidate in indexes[target].records(name)
        if spec.matches(candidate)
    ]
    usable = [
        (target, candidate)
        for target, candidate in candidates
        if allowed(target, candidate) and _within_pins(candidate, pinned.get(name))
    ]
    if usable:
        return usable, None
    return [], "no upstream record matches" if not candidates else "only excluded or pinned-out records match"


def _explicit_constraints(includes: list[ParsedSpec]) -> dict[str, list[ParsedSpec]]:
    pinned: dict[str, list[ParsedSpec]] = {}
    for spec in includes:
        if not spec.is_glob:
            pinned.setdefault(spec.name, []).append(spec)
    return pinned


def _within_pins(record: Any, pins: list[ParsedSpec] | None) -> bool:
    return pins is None or any(pin.matches(record) for pin in pins)


def _warn_pre_releases(spec: ParsedSpec, selection: Selection) -> None:
    """Warn when an upper bound such as `<3` lets pre-releases such as 3.0.0a1 in.

    conda orders 3.0.0a1 before 3.0.0, so `<3` admits it; `<3.0a0` does not.
    """
    upper = re.search(r"<\s*([0-9][0-9A-Za-z.]*)", str(spec.spec.version or ""))
    if not upper:
        return
    bound = upper.group(1)
    for chosen in selection.chosen.values():
        if chosen.name == spec.name and PRE_RELEASE.search(chosen.version.split(".")[-1]):
            if chosen.version.startswith(bound.split(".")[0]):
                message = (
                    f"spec {spec.text!r} admits pre-release {chosen.name} {chosen.version}; "
                    f"write '<{bound}a0' to leave pre-releases out"
                )
                if message not in selection.warnings:
                    selection.warnings.append(message)
