"""Values that pass between the validation pipeline and its checks.

A check receives a `CheckContext` and returns a `CheckResult`. Both are
frozen so that one check cannot change the input of the next one. Nothing
here touches the catalog: the caller stores results itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.catalog.models import CheckOutcome

__all__ = ["CheckContext", "CheckOutcome", "CheckResult"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one package file.

    `summary` is one line for a reviewer, such as
    "sha256 mismatch: record 1f07873d6aa0…, file 9b73eb4e3197…".
    `evidence` contains the details behind it and must be JSON-serialisable,
    because the caller stores it in a JSON column.
    """

    outcome: CheckOutcome
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckContext:
    """One stored package file and the upstream record it was downloaded for.

    `path` is the blob in the store, which checks only read. Its own name
    is a hash, so checks take the package's file name, and with it the
    format, from `filename`. `record` is the upstream repodata record
    (name, version, build, build_number, depends, size, sha256, md5,
    subdir, ...), which may carry upstream hotfixes that the package's
    own info/index.json does not.
    """

    path: Path
    filename: str
    subdir: str
    record: Mapping[str, Any]
