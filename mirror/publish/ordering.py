"""Order package records by conda version, parsed and compared with `rattler.Version`.

A record whose version does not parse cannot be ordered against the
others, so callers leave it out of "newest" choices instead of guessing
where it belongs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from rattler import Version
from rattler.exceptions import InvalidVersionError

logger = logging.getLogger(__name__)


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    """Parse a conda version string; return None when rattler rejects it."""
    try:
        return Version(text)
    except InvalidVersionError:
        logger.warning(
            "version %r is not a conda version; the record is left out of newest-version choices",
            text,
        )
        return None


def record_version(record: Mapping[str, Any]) -> Version | None:
    version = record.get("version")
    return parse_version(str(version)) if version is not None else None


def record_rank(record: Mapping[str, Any], filename: str) -> tuple[Any, ...]:
    """Return a sort key: version, then build number, timestamp and file name.

    The last three only break ties between builds of one version, so the
    choice is the same on every run whatever order the records come in.
    Only records with a parseable version may be compared, because None
    does not compare with a Version.
    """
    return (
        record_version(record),
        _as_int(record.get("build_number")),
        _as_int(record.get("timestamp")),
        filename,
    )


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
