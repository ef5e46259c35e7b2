"""Severity of an OSV advisory on the scale none, low, medium, high, critical.

Two sources are read, in this order: GitHub's `database_specific.severity`
(LOW, MODERATE, HIGH, CRITICAL), then a CVSS v3.0 or v3.1 vector in the
top-level or per-package `severity` list, scored with the CVSS v3.1 base
score formula (https://www.first.org/cvss/v3.1/specification-document,
section 7). CVSS v2 and v4 vectors are not scored, so an advisory with
only those has no severity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

_GITHUB_LEVELS = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}

# Metric weights from the CVSS v3.1 specification, table 16.
_ATTACK_VECTOR = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_ATTACK_COMPLEXITY = {"L": 0.77, "H": 0.44}
_PRIVILEGES_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PRIVILEGES_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}
_USER_INTERACTION = {"N": 0.85, "R": 0.62}
_IMPACT = {"H": 0.56, "L": 0.22, "N": 0.0}
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


class InvalidVectorError(ValueError):
    """A CVSS vector string is not a valid v3.0 or v3.1 base vector."""


def cvss3_base_score(vector: str) -> float:
    """Compute the CVSS v3.x base score (0.0 to 10.0) of a vector such as "CVSS:3.1/AV:N/AC:L/...".

    Raises InvalidVectorError when the prefix, a base metric or its value
    is missing or unknown. Temporal and environmental metrics are ignored.
    """
    metrics = _parse_vector(vector)
    changed = metrics["S"] == "C"
    privileges = (_PRIVILEGES_CHANGED if changed else _PRIVILEGES_UNCHANGED)[metrics["PR"]]

    impact_subscore = 1 - (
        (1 - _IMPACT[metrics["C"]]) * (1 - _IMPACT[metrics["I"]]) * (1 - _IMPACT[metrics["A"]])
    )
    if changed:
        impact = 7.52 * (impact_subscore - 0.029) - 3.25 * (impact_subscore - 0.02) ** 15
    else:
        impact = 6.42 * impact_subscore
    exploitability = (
        8.22
        * _ATTACK_VECTOR[metrics["AV"]]
        * _ATTACK_COMPLEXITY[metrics["AC"]]
        * privileges
        * _USER_INTERACTION[metrics["UI"]]
    )

    if impact <= 0:
        return 0.0
    if changed:
        return _round_up(min(1.08 * (impact + exploitability), 10.0))
    return _round_up(min(impact + exploitability, 10.0))


def severity_of_score(score: float) -> str:
    """Map a CVSS score to its qualitative rating (CVSS v3.1 specification, table 14)."""
    if score == 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"


def advisory_severity(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return the severity of an OSV record and what it was derived from, or (None, None)."""
    database_specific = record.get("database_specific")
    if isinstance(database_specific, Mapping):
        level = database_specific.get("severity")
        if isinstance(level, str) and level.strip().lower() in _GITHUB_LEVELS:
            return _GITHUB_LEVELS[level.strip().lower()], f"database_specific.severity {level}"

    best: tuple[float, str] | None = None
    for vector in _cvss3_vectors(record):
        try:
            score = cvss3_base_score(vector)
        except InvalidVectorError as exc:
            logger.debug("advisory %s: %s", record.get("id"), exc)
            continue
        if best is None or score > best[0]:
            best = (score, vector)
    if best is None:
        return None, None
    return severity_of_score(best[0]), f"{best[1]} (base score {best[0]})"


def _cvss3_vectors(record: Mapping[str, Any]) -> list[str]:
    entries = list(_severity_entries(record))
    for affected in record.get("affected") or []:
        if isinstance(affected, Mapping):
            entries.extend(_severity_entries(affected))
    return [entry["score"] for entry in entries if entry.get("type") == "CVSS_V3" and isinstance(entry.get("score"), str)]


def _severity_entries(holder: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = holder.get("severity")
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, Mapping)]


def _parse_vector(vector: str) -> dict[str, str]:
    parts = vector.strip().split("/")
    if parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        raise InvalidVectorError(f"CVSS vector {vector!r} does not start with CVSS:3.0/ or CVSS:3.1/")

    metrics: dict[str, str] = {}
    for part in parts[1:]:
        name, separator, value = part.partition(":")
        if not separator:
            raise InvalidVectorError(f"CVSS vector {vector!r} has a part {part!r} without ':'")
        metrics[name] = value

    for name, table in (
        ("AV", _ATTACK_VECTOR), ("AC", _ATTACK_COMPLEXITY), ("PR", _PRIVILEGES_UNCHANGED),
        ("UI", _USER_INTERACTION), ("S", {"U": 0, "C": 0}), ("C", _IMPACT), ("I", _IMPACT), ("A", _IMPACT),
    ):
        if metrics.get(name) not in table:
            raise InvalidVectorError(
                f"CVSS vector {vector!r} has a missing or unknown {name} value {metrics.get(name)!r}"
            )
    return {name: metrics[name] for name in _BASE_METRICS}


def _round_up(value: float) -> float:
    # CVSS v3.1 Roundup (appendix A): integer arithmetic avoids float error
    # such as 4.000000000000001 rounding up to 4.1.
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0
