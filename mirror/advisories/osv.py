"""Parse one OSV JSON record into the values the advisory tables store.

Only the fields the mirror uses are read: id, aliases, summary, details,
published, modified, withdrawn, severity and `affected[]` with its
package, ranges and explicit versions. The format is described at
https://ossf.github.io/osv-schema/. Anything else in the record is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mirror.advisories.models import VERSIONS_RANGE
from mirror.advisories.severity import advisory_severity

MAX_ID_LENGTH = 128
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class InvalidAdvisoryError(ValueError):
    """A JSON document is not a usable OSV record. The message names the field."""


@dataclass(frozen=True)
class ParsedRange:
    ecosystem: str
    package_name: str
    package_key: str
    range_type: str
    events: list[dict[str, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedAdvisory:
    id: str
    modified: datetime
    aliases: list[str]
    summary: str | None
    details: str | None
    severity: str | None
    severity_source: str | None
    published: datetime | None
    withdrawn: datetime | None
    ranges: list[ParsedRange]


def pypi_key(name: str) -> str:
    """Normalise a PyPI project name as PEP 503 does: lower case, runs of -_. become one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_key(ecosystem: str, name: str) -> str:
    """Return the lookup key of a package name in its ecosystem."""
    if ecosystem == "PyPI":
        return pypi_key(name)
    return name


def as_utc(moment: datetime) -> datetime:
    """Attach UTC to a naive datetime, because SQLite returns stored timestamps without a zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_advisory(record: Any) -> ParsedAdvisory:
    """Check and convert one decoded OSV document, or raise InvalidAdvisoryError."""
    if not isinstance(record, Mapping):
        raise InvalidAdvisoryError(f"the document is a JSON {type(record).__name__}, not an object")

    advisory_id = record.get("id")
    if not isinstance(advisory_id, str) or not advisory_id.strip() or len(advisory_id) > MAX_ID_LENGTH:
        raise InvalidAdvisoryError(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH} characters, not {advisory_id!r}")

    modified = _timestamp(record, "modified", required=True)
    severity, severity_source = advisory_severity(record)
    return ParsedAdvisory(
        id=advisory_id,
        modified=modified,
        aliases=_string_list(record, "aliases"),
        summary=_optional_text(record, "summary"),
        details=_optional_text(record, "details"),
        severity=severity,
        severity_source=severity_source,
        published=_timestamp(record, "published"),
        withdrawn=_timestamp(record, "withdrawn"),
        ranges=_ranges(record),
    )


def _timestamp(record: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidAdvisoryError(f"{key!r} must be an RFC 3339 timestamp string, not {value!r}")
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise InvalidAdvisoryError(f"{key!r} is not an RFC 3339 timestamp: {value!r}") from exc


def _string_list(holder: Mapping[str, Any], key: str) -> list[str]:
    value = holder.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidAdvisoryError(f"{key!r} must be a list of strings, not {value!r}")
    return list(value)


def _optional_text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidAdvisoryError(f"{key!r} must be a string, not {type(value).__name__}")


def _ranges(record: Mapping[str, Any]) -> list[ParsedRange]:
    affected = record.get("affected") or []
    if not isinstance(affected, list):
        raise InvalidAdvisoryError(f"'affected' must be a list, not {type(affected).__name__}")

    ranges: list[ParsedRange] = []
    for position, entry in enumerate(affected):
        if not isinstance(entry, Mapping):
            raise InvalidAdvisoryError(f"affected[{position}] must be an object")
        package = entry.get("package")
        # OSV allows entries without a package (only GIT ranges of a repository);
        # they name no version a conda package could have.
        if package is None:
            continue
        ecosystem, name = _package(package, position)
        ranges.extend(_package_ranges(entry, ecosystem, name, position))
    return ranges


def _package(package: Any, position: int) -> tuple[str, str]:
    if not isinstance(package, Mapping):
        raise InvalidAdvisoryError(f"affected[{position}].package must be an object")
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not ecosystem or not isinstance(name, str) or not name:
        raise InvalidAdvisoryError(
            f"affected[{position}].package needs string 'ecosystem' and 'name', not {ecosystem!r} and {name!r}"
        )
    return ecosystem, name


def _package_ranges(entry: Mapping[str, Any], ecosystem: str, name: str, position: int) -> list[ParsedRange]:
    key = package_key(ecosystem, name)
    ranges = []
    for index, osv_range in enumerate(entry.get("ranges") or []):
        where = f"affected[{position}].ranges[{index}]"
        if not isinstance(osv_range, Mapping) or not isinstance(osv_range.get("type"), str):
            raise InvalidAdvisoryError(f"{where} must be an object with a string 'type'")
        events = _events(osv_range.get("events"), where)
        ranges.append(ParsedRange(ecosystem, name, key, osv_range["type"], events=events))

    versions = _string_list(entry, "versions")
    if versions:
        ranges.append(ParsedRange(ecosystem, name, key, VERSIONS_RANGE, versions=versions))
    return ranges


def _events(events: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(events, list) or not events:
        raise InvalidAdvisoryError(f"{where}.events must be a non-empty list")
    checked = []
    for event in events:
        if (
            not isinstance(event, Mapping)
            or len(event) != 1
            or next(iter(event)) not in EVENT_KINDS
            or not isinstance(next(iter(event.values())), str)
        ):
            raise InvalidAdvisoryError(
                f"{where}.events has {event!r}; each event must be one of {', '.join(EVENT_KINDS)} with a string version"
            )
        checked.append(dict(event))
    return checked
