"""Decide whether a conda package version falls in an OSV affected range.

OSV ranges come in three types. ECOSYSTEM ranges use the ecosystem's own
order, which for PyPI is PEP 440 (`packaging.version`). SEMVER ranges use
Semantic Versioning 2.0 precedence. GIT ranges name commits and never
match a version. A conda version that the range's order cannot parse,
such as openssl's "1.1.1w", is compared with conda's own order
(`rattler.Version`) instead, and so are the range's bounds.

Events are evaluated as the OSV schema describes: sorted by version, an
`introduced` event opens the range, `fixed` closes it before its version
and `last_affected` after it. An `introduced` of "0" means "from the
first version".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version
from rattler import Version as CondaVersion
from rattler.exceptions import InvalidVersionError

from mirror.advisories.models import VERSIONS_RANGE

logger = logging.getLogger(__name__)

VersionKey = Callable[[str], Any]

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


class UnparsableVersionError(ValueError):
    """A version string is not valid in the order that was asked for."""


def pep440_key(version: str) -> Pep440Version:
    try:
        return Pep440Version(version)
    except InvalidVersion as exc:
        raise UnparsableVersionError(f"{version!r} is not a PEP 440 version") from exc


def conda_key(version: str) -> CondaVersion:
    try:
        return CondaVersion(version)
    except InvalidVersionError as exc:
        raise UnparsableVersionError(f"{version!r} is not a conda version") from exc


def semver_key(version: str) -> tuple[Any, ...]:
    """Build a sort key with Semantic Versioning 2.0 precedence, ignoring build metadata."""
    match = _SEMVER.match(version)
    if match is None:
        raise UnparsableVersionError(f"{version!r} is not a semantic version")
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        # A release sorts after every prerelease of the same version.
        return (int(major), int(minor), int(patch), (1,))
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
    )
    return (int(major), int(minor), int(patch), (0, identifiers))


def primary_key_for(range_type: str, ecosystem: str) -> VersionKey | None:
    """Return the version order of a range, or None for ranges that never match a version (GIT)."""
    if range_type == "SEMVER":
        return semver_key
    if range_type == "ECOSYSTEM":
        return pep440_key if ecosystem == "PyPI" else conda_key
    return None


def in_range(version: str, range_type: str, ecosystem: str, events: Sequence[dict[str, str]]) -> bool:
    """Return whether `version` is affected by one OSV range.

    Raises UnparsableVersionError when neither the range's order nor
    conda's can read the version and every bound.
    """
    primary = primary_key_for(range_type, ecosystem)
    if primary is None:
        return False
    try:
        return _evaluate(version, events, primary)
    except UnparsableVersionError:
        if primary is conda_key:
            raise
        return _evaluate(version, events, conda_key)


def in_versions(version: str, ecosystem: str, versions: Sequence[str]) -> bool:
    """Return whether `version` is one of an explicit version list.

    For PyPI, PEP 440 equality also counts ("2.0" equals "2.0.0"), because
    that is how the ecosystem names the same release.
    """
    if version in versions:
        return True
    if ecosystem != "PyPI":
        return False
    try:
        expected = pep440_key(version)
    except UnparsableVersionError:
        return False
    for listed in versions:
        try:
            if pep440_key(listed) == expected:
                return True
        except UnparsableVersionError:
            continue
    return False


def affects(version: str, range_type: str, ecosystem: str, events: Sequence[dict[str, str]], versions: Sequence[str]) -> bool:
    """Return whether one stored range row affects `version`. A version that no order can parse never matches."""
    if range_type == VERSIONS_RANGE:
        return in_versions(version, ecosystem, versions)
    try:
        return in_range(version, range_type, ecosystem, events)
    except UnparsableVersionError as exc:
        logger.debug("cannot compare %r with a %s %s range: %s", version, ecosystem, range_type, exc)
        return False


def _evaluate(version: str, events: Sequence[dict[str, str]], key: VersionKey) -> bool:
    current = key(version)
    affected = False
    for kind, bound in _sorted_events(events, key):
        if kind == "introduced":
            if bound is None or current >= bound:
                affected = True
        elif kind == "fixed":
            if current >= bound:
                affected = False
        elif kind == "last_affected":
            if current > bound:
                affected = False
    return affected


def _sorted_events(events: Sequence[dict[str, str]], key: VersionKey) -> list[tuple[str, Any]]:
    # "introduced": "0" has no key in any order, so it goes first with bound None.
    # `limit` events only bound GIT ranges.
    from_start: list[tuple[str, Any]] = []
    keyed: list[tuple[str, Any]] = []
    for event in events:
        ((kind, value),) = event.items()
        if kind == "limit":
            continue
        if kind == "introduced" and value == "0":
            from_start.append((kind, None))
        else:
            keyed.append((kind, key(value)))
    return from_start + sorted(keyed, key=lambda item: item[1])
