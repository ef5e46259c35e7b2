"""Integrity check: the stored bytes are the bytes the upstream record describes.

The file is hashed in chunks, so its size does not matter for memory.
Size and sha256 are compared when the record has them. md5 is compared
whenever the record has it, which also covers old records that carry md5
but no sha256. A record with neither hash cannot be verified and fails.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mirror.catalog.models import CheckOutcome
from mirror.errors import StoreError
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

_HEX_LENGTHS = {"sha256": 64, "md5": 32}


class IntegrityCheck:
    """Compare size, sha256 and md5 of the stored file with the upstream record."""

    name = "integrity"
    version = "1"
    gate = True

    def __init__(self, chunk_size: int = CHUNK_SIZE):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        self.chunk_size = chunk_size

    def run(self, context: CheckContext) -> CheckResult:
        expected, invalid = _expected_values(context.record)
        if invalid:
            return _invalid_record_result(invalid)
        if "sha256" not in expected and "md5" not in expected:
            return CheckResult(
                outcome=CheckOutcome.FAIL,
                summary="upstream record has neither sha256 nor md5, so the file cannot be verified",
                evidence={"record_fields": sorted(context.record)},
            )

        actual = hash_file(context.path, self.chunk_size)

        mismatches = {
            field: {"record": value, "file": actual[field]}
            for field, value in expected.items()
            if value != actual[field]
        }
        evidence = {"file": actual, "compared": sorted(expected), "mismatches": mismatches}
        if mismatches:
            return CheckResult(CheckOutcome.FAIL, _mismatch_summary(mismatches), evidence)

        return CheckResult(
            CheckOutcome.PASS,
            f"{', '.join(sorted(expected))} match the upstream record",
            evidence,
        )


def hash_file(path: Path, chunk_size: int = CHUNK_SIZE) -> dict[str, Any]:
    """Read `path` once and return its size, sha256 and md5.

    Raises StoreError when the blob cannot be read, which the pipeline
    records as ERROR rather than as a defect of the package.
    """
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(path, "rb") as blob:
            while chunk := blob.read(chunk_size):
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise StoreError(f"could not read blob {path}: {exc}; check the blob store") from exc
    return {"size": size, "sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _expected_values(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the record's size and hashes into usable values and invalid ones."""
    expected: dict[str, Any] = {}
    invalid: dict[str, Any] = {}

    size = record.get("size")
    if size is not None:
        # bool is an int subclass, and True is not a size.
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            expected["size"] = size
        else:
            invalid["size"] = size

    for field, length in _HEX_LENGTHS.items():
        value = record.get(field)
        if value is None:
            continue
        if isinstance(value, str) and re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
            expected[field] = value.lower()
        else:
            invalid[field] = value
    return expected, invalid


def _invalid_record_result(invalid: dict[str, Any]) -> CheckResult:
    described = "; ".join(f"{field} {value!r}" for field, value in invalid.items())
    return CheckResult(
        outcome=CheckOutcome.FAIL,
        summary=f"upstream record has invalid values: {described}",
        evidence={"invalid_record_values": {field: repr(value) for field, value in invalid.items()}},
    )


def _mismatch_summary(mismatches: dict[str, dict[str, Any]]) -> str:
    parts = [
        f"{field} mismatch: record {_short(values['record'])}, file {_short(values['file'])}"
        for field, values in mismatches.items()
    ]
    return "; ".join(parts)


def _short(value: Any) -> str:
    # Full hashes are in the evidence, so the summary can stay one readable line.
    text = str(value)
    return text if len(text) <= 16 else f"{text[:12]}…"
