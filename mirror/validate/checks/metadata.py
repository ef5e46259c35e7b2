"""Metadata check: info/index.json agrees with the upstream record and the file name.

Identity fields (name, version, build, build_number, subdir) must agree
between the package's info/index.json, the upstream record, the file
name `<name>-<version>-<build>.<ext>` and the subdir the record was
listed in. Any difference there fails, because it means the file is not
the package the record describes.

Upstream channels patch dependency metadata in repodata after a build
(hotfixes), so differences in depends, constrains, license or
track_features are expected. They pass, and the evidence lists them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.archive import INDEX_JSON, ArchiveError, ArchiveLimits, IndexJsonVisitor, format_of
from mirror.validate.package_reader import PackageMember, PackageReader
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.shared_scan import BytesSink, run_alone

logger = logging.getLogger(__name__)

IDENTITY_FIELDS = ("name", "version", "build", "build_number", "subdir")
HOTFIX_FIELDS = ("depends", "constrains", "license", "track_features")

# Packages built before conda-build wrote `subdir` name the platform and
# CPU instead, for example platform "osx" and arch "x86_64" for osx-64.
_ARCH_BITS = {"x86_64": "64", "x86": "32"}


class MetadataCheck:
    """Compare info/index.json with the upstream record, the file name and the listing subdir."""

    name = "metadata"
    version = "1"

    def __init__(self, limits: ArchiveLimits | None = None):
        self.limits = limits or ArchiveLimits()

    def run(self, context: CheckContext) -> CheckResult:
        return run_alone(self, context)

    def begin(self, context: CheckContext) -> _MetadataVisitor:
        return _MetadataVisitor(context)


class _MetadataVisitor:
    """Read info/index.json only, then compare it once the pass ends."""

    def __init__(self, context: CheckContext):
        self.context = context
        self.index = IndexJsonVisitor(index_only=True)
        self.components = self.index.components

    def start(self, reader: PackageReader) -> None:
        self.index.start(reader)

    def visit(self, member: PackageMember) -> BytesSink | None:
        return self.index.visit(member)

    def is_done(self) -> bool:
        return self.index.is_done()

    def finish(self, error: Exception | None) -> CheckResult:
        context = self.context
        try:
            index = _load_index_json(context, self.index.index_json, error)
        except ArchiveError as exc:
            return CheckResult(CheckOutcome.FAIL, f"cannot read info/index.json: {exc}", {"filename": context.filename})

        try:
            from_filename = parse_filename(context.filename)
        except ValueError as exc:
            return CheckResult(CheckOutcome.FAIL, str(exc), {"filename": context.filename})

        index_subdir, subdir_source = subdir_of(index)
        sources = _identity_sources(index, index_subdir, context, from_filename)
        mismatches = _mismatches(sources)
        hotfix = _hotfix_differences(context.record, index)
        evidence = {
            "index_json": {key: index.get(key) for key in (*IDENTITY_FIELDS, *HOTFIX_FIELDS) if key in index},
            "subdir_source": subdir_source,
            "mismatches": mismatches,
            "hotfix_differences": hotfix,
        }
        return _result(mismatches, index_subdir, hotfix, evidence)


def parse_filename(filename: str) -> dict[str, str]:
    """Split `<name>-<version>-<build>.<ext>` into its parts, or raise ValueError.

    Version and build cannot contain "-", so the last two hyphens split
    the name, which may contain hyphens itself.
    """
    try:
        extension = format_of(filename)
    except ArchiveError as exc:
        raise ValueError(str(exc)) from exc

    stem = filename[: -len(extension) - 1]
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"file name {filename!r} is not <name>-<version>-<build>.{extension}")
    name, version, build = parts
    return {"name": name, "version": version, "build": build}


def subdir_of(index: Mapping[str, Any]) -> tuple[str | None, str]:
    """Return the subdir that index.json declares or implies, and where it came from."""
    subdir = index.get("subdir")
    if isinstance(subdir, str) and subdir:
        return subdir, "index.json subdir"

    platform, arch = index.get("platform"), index.get("arch")
    if platform is None and arch is None:
        return "noarch", "index.json has no subdir, platform or arch"
    if isinstance(platform, str) and isinstance(arch, str):
        return f"{platform}-{_ARCH_BITS.get(arch, arch)}", "index.json platform and arch"
    return None, f"index.json has no subdir and an incomplete platform {platform!r} / arch {arch!r}"


def _load_index_json(context: CheckContext, raw: bytes | None, error: Exception | None) -> dict[str, Any]:
    if error is not None:
        raise error
    if raw is None:
        raise ArchiveError(f"{context.filename} has no {INDEX_JSON}")
    try:
        index = json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"{context.filename}: info/index.json is not valid JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ArchiveError(f"{context.filename}: info/index.json is a JSON {type(index).__name__}, not an object")
    return index


def _identity_sources(
    index: Mapping[str, Any],
    index_subdir: str | None,
    context: CheckContext,
    from_filename: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """Collect each identity field's value from every source that has it."""
    sources: dict[str, dict[str, Any]] = {}
    for field in IDENTITY_FIELDS:
        values: dict[str, Any] = {}
        if field == "subdir":
            values["index.json"] = index_subdir
            values["listed in"] = context.subdir
        else:
            # A missing index.json field shows as None, so it fails below.
            values["index.json"] = index.get(field)
            if field in from_filename:
                values["file name"] = from_filename[field]
        if field in context.record:
            values["record"] = context.record[field]
        sources[field] = values
    return sources


def _mismatches(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    mismatches = {}
    for field, values in sources.items():
        if field == "subdir" and values["index.json"] is None:
            continue  # nothing to compare, so _result reports a WARN
        if len({json.dumps(value) for value in values.values()}) > 1:
            mismatches[field] = dict(values)
    return mismatches


def _hotfix_differences(record: Mapping[str, Any], index: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    differences = {}
    for field in HOTFIX_FIELDS:
        if _normalise_hotfix_field(field, record.get(field)) != _normalise_hotfix_field(field, index.get(field)):
            differences[field] = {"record": record.get(field), "index.json": index.get(field)}
    return differences


def _normalise_hotfix_field(field: str, value: Any) -> Any:
    # Order and spelling variants (list or space-separated string, missing or
    # empty) do not change what conda does, so they are not hotfixes.
    if field == "license":
        return value or None
    if value is None:
        return []
    if isinstance(value, str):
        return sorted(token for token in re.split(r"[\s,]+", value) if token)
    if isinstance(value, list):
        return sorted(str(item) for item in value)
    return value


def _result(
    mismatches: dict[str, dict[str, Any]],
    index_subdir: str | None,
    hotfix: dict[str, dict[str, Any]],
    evidence: dict[str, Any],
) -> CheckResult:
    if mismatches:
        described = "; ".join(
            f"{field} differs: " + ", ".join(f"{source} {value!r}" for source, value in values.items())
            for field, values in mismatches.items()
        )
        return CheckResult(CheckOutcome.FAIL, described, evidence)

    hotfix_note = f"; upstream hotfix differs from index.json in: {', '.join(hotfix)}" if hotfix else ""
    if index_subdir is None:
        return CheckResult(
            CheckOutcome.WARN,
            f"{evidence['subdir_source']}, so the subdir cannot be compared{hotfix_note}",
            evidence,
        )
    return CheckResult(
        CheckOutcome.PASS,
        f"name, version, build, build_number and subdir match{hotfix_note}",
        evidence,
    )
