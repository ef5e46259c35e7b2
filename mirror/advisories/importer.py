"""Import OSV advisories from a folder, a single .json file or a .zip dump.

Each JSON file is one advisory. Zip archives (as the OSV project
distributes its per-ecosystem dumps) are read member by member in memory
and never extracted, so a member name such as "../evil" cannot write
anywhere. Unsafe names are still skipped by name, as a sign of a tampered
archive. A member or file larger than `max_member_bytes` is skipped. Once
the decompressed total would pass `max_total_bytes`, the import stops and
is recorded as incomplete.

An advisory is inserted when its id is new, replaced when the file's
`modified` is newer than the stored one, and left alone otherwise, so
importing the same dump twice changes nothing. A malformed file is
reported by name and skipped, and the import goes on.
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from mirror.advisories.models import Advisory, AdvisoryImport, AffectedRange
from mirror.advisories.osv import InvalidAdvisoryError, ParsedAdvisory, as_utc, parse_advisory
from mirror.catalog.models import utcnow
from mirror.errors import MirrorError

logger = logging.getLogger(__name__)

# Skipped files are logged one by one up to this count, then only counted,
# so a dump full of broken files does not flood the log.
LOGGED_SKIPS = 20
# At most this many skipped files are kept in the import log row.
STORED_SKIPS = 1000
FLUSH_EVERY = 500


class AdvisoryImportError(MirrorError):
    """The advisory source cannot be read at all (missing path, not a zip, wrong type)."""


@dataclass(frozen=True)
class ImportLimits:
    """Size guards for one import, in decompressed bytes.

    The defaults are estimates: single OSV records are a few kilobytes,
    and the PyPI dump unpacks to a few hundred megabytes.
    """

    max_member_bytes: int = 8 * 1024**2
    max_total_bytes: int = 8 * 1024**3
    max_members: int = 5_000_000


@dataclass(frozen=True)
class SkippedFile:
    name: str
    reason: str


@dataclass
class ImportReport:
    """Counts of one import and the files it skipped, with reasons."""

    source: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    complete: bool = True

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append(SkippedFile(name, reason))
        level = logging.WARNING if len(self.skipped) <= LOGGED_SKIPS else logging.DEBUG
        logger.log(level, "advisory import %s: skipped %s: %s", self.source, name, reason)

    def skipped_by_reason(self) -> Counter[str]:
        """Count skipped files by the reason's first words, such as "malformed" or "too large"."""
        return Counter(skipped.reason.split(":", 1)[0] for skipped in self.skipped)


def import_advisories(session: Session, path: Path, limits: ImportLimits | None = None) -> ImportReport:
    """Import every advisory under `path` into the session's catalog and log the run.

    The caller commits. Raises AdvisoryImportError when `path` is neither
    a folder, a .json file nor a readable .zip archive.
    """
    limits = limits or ImportLimits()
    report = ImportReport(source=str(path))
    log_row = AdvisoryImport(source=str(path), started_at=utcnow())
    session.add(log_row)

    # One query up front instead of a lookup per file, because the PyPI dump
    # alone has tens of thousands of records.
    rows = session.execute(select(Advisory.id, Advisory.modified))
    stored = {advisory_id: as_utc(modified) for advisory_id, modified in rows}
    for position, (name, data) in enumerate(_documents(path, limits, report), start=1):
        _import_document(session, name, data, report, stored)
        if position % FLUSH_EVERY == 0:
            session.flush()

    _finish_log(log_row, report)
    session.flush()
    logger.info(
        "advisory import %s: %d imported, %d updated, %d unchanged, %d skipped%s",
        path, report.imported, report.updated, report.unchanged, len(report.skipped),
        "" if report.complete else " (stopped early)",
    )
    return report


def _documents(path: Path, limits: ImportLimits, report: ImportReport) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        return _folder_documents(path, limits, report)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _zip_documents(path, limits, report)
    if path.is_file() and path.suffix.lower() == ".json":
        return _folder_documents(path, limits, report, single=True)
    if not path.exists():
        raise AdvisoryImportError(f"advisory source {path} does not exist; pass a folder, a .json file or a .zip dump")
    raise AdvisoryImportError(f"advisory source {path} is not a folder, a .json file or a .zip file")


def _folder_documents(
    path: Path, limits: ImportLimits, report: ImportReport, *, single: bool = False
) -> Iterator[tuple[str, bytes]]:
    files = [path] if single else sorted(candidate for candidate in path.rglob("*.json") if candidate.is_file())
    total = 0
    for count, file in enumerate(files, start=1):
        name = file.name if single else file.relative_to(path).as_posix()
        size = file.stat().st_size
        if not _within_limits(name, size, total, count, limits, report):
            if not report.complete:
                return
            continue
        try:
            data = file.read_bytes()
        except OSError as exc:
            report.skip(name, f"unreadable: {exc}")
            continue
        total += len(data)
        yield name, data


def _zip_documents(path: Path, limits: ImportLimits, report: ImportReport) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryImportError(f"advisory dump {path} is not a readable zip archive: {exc}") from exc

    with archive:
        total = 0
        count = 0
        for member in archive.infolist():
            if member.is_dir():
                continue
            count += 1
            data = _read_member(archive, member, total, count, limits, report)
            if data is None:
                if not report.complete:
                    return
                continue
            total += len(data)
            yield member.filename, data


def _read_member(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    total: int,
    count: int,
    limits: ImportLimits,
    report: ImportReport,
) -> bytes | None:
    name = member.filename
    problem = _unsafe_member_name(name)
    if problem is not None:
        report.skip(name, f"unsafe member name: {problem}")
        return None
    if not name.lower().endswith(".json"):
        report.skip(name, "not a .json file")
        return None
    # The header's size can lie, so the read below is bounded as well.
    if not _within_limits(name, member.file_size, total, count, limits, report):
        return None

    try:
        with archive.open(member) as stream:
            data = stream.read(limits.max_member_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError) as exc:
        report.skip(name, f"unreadable: {exc}")
        return None
    if len(data) > limits.max_member_bytes:
        report.skip(name, f"too large: more than {limits.max_member_bytes} bytes once decompressed")
        return None
    if total + len(data) > limits.max_total_bytes:
        _stop(report, name, f"total limit reached: more than {limits.max_total_bytes} decompressed bytes")
        return None
    return data


def _unsafe_member_name(name: str) -> str | None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in pure.parts:
        return "contains '..'"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _within_limits(
    name: str, size: int, total: int, count: int, limits: ImportLimits, report: ImportReport
) -> bool:
    if count > limits.max_members:
        _stop(report, name, f"member limit reached: more than {limits.max_members} files")
        return False
    if size > limits.max_member_bytes:
        report.skip(name, f"too large: {size} bytes, the limit is {limits.max_member_bytes}")
        return False
    if total + size > limits.max_total_bytes:
        _stop(report, name, f"total limit reached: more than {limits.max_total_bytes} decompressed bytes")
        return False
    return True


def _stop(report: ImportReport, name: str, reason: str) -> None:
    report.complete = False
    report.skip(name, f"{reason}; this file and all after it were not imported, raise the limit to import them")


def _import_document(
    session: Session, name: str, data: bytes, report: ImportReport, stored: dict[str, datetime]
) -> None:
    try:
        parsed = parse_advisory(json.loads(data))
    except (ValueError, RecursionError) as exc:
        # json.JSONDecodeError, UnicodeDecodeError and InvalidAdvisoryError are ValueErrors.
        kind = "invalid OSV record" if isinstance(exc, InvalidAdvisoryError) else "malformed JSON"
        report.skip(name, f"malformed: {kind}: {exc}")
        return

    stored_modified = stored.get(parsed.id)
    if stored_modified is None:
        session.add(_new_advisory(parsed, name))
        report.imported += 1
    elif parsed.modified > stored_modified:
        _replace(session.get(Advisory, parsed.id), parsed, name)
        report.updated += 1
    else:
        report.unchanged += 1
        return
    stored[parsed.id] = parsed.modified


def _new_advisory(parsed: ParsedAdvisory, source_file: str) -> Advisory:
    advisory = Advisory(id=parsed.id)
    _replace(advisory, parsed, source_file)
    return advisory


def _replace(advisory: Advisory, parsed: ParsedAdvisory, source_file: str) -> None:
    advisory.aliases = parsed.aliases
    advisory.summary = parsed.summary
    advisory.details = parsed.details
    advisory.severity = parsed.severity
    advisory.severity_source = parsed.severity_source
    advisory.published = parsed.published
    advisory.modified = parsed.modified
    advisory.withdrawn = parsed.withdrawn
    advisory.source_file = source_file
    advisory.imported_at = utcnow()
    advisory.ranges = [
        AffectedRange(
            ecosystem=item.ecosystem,
            package_name=item.package_name,
            package_key=item.package_key,
            range_type=item.range_type,
            events=item.events,
            versions=item.versions,
        )
        for item in parsed.ranges
    ]


def _finish_log(log_row: AdvisoryImport, report: ImportReport) -> None:
    log_row.finished_at = utcnow()
    log_row.imported = report.imported
    log_row.updated = report.updated
    log_row.unchanged = report.unchanged
    log_row.complete = report.complete
    log_row.skipped = [
        {"file": skipped.name, "reason": skipped.reason} for skipped in report.skipped[:STORED_SKIPS]
    ]
