"""The file list of a stored package, and the differences between two versions of a package.

The file list comes from tar headers, read with `PackageReader`: names,
sizes, modes and link targets, never file content, and at most
`MAX_LISTED_FILES` members, so a huge or hostile archive cannot make a
page slow. Script text for the diff comes from the `scripts` check's
evidence, which the validator already capped.
"""

from __future__ import annotations

import difflib
import logging
import tarfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.errors import StoreError
from mirror.validate.package_reader import ArchiveError, PackageReader

logger = logging.getLogger(__name__)

MAX_LISTED_FILES = 2000
# Script diffs longer than this many lines are cut, with a note.
MAX_DIFF_LINES = 400


@dataclass
class FileListing:
    """The members of one package: name, component, kind, size, mode and link target."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"entries": self.entries, "truncated": self.truncated, "error": self.error}


def list_files(blob: Path, filename: str, limit: int = MAX_LISTED_FILES) -> FileListing:
    """Read the member headers of a stored package, at most `limit` of them.

    An unreadable blob or archive gives a listing with `error` set,
    because the page should still show everything else.
    """
    listing = FileListing()
    if not blob.is_file():
        listing.error = "the package file is not in the blob store (not downloaded, or removed)"
        return listing
    try:
        with closing(PackageReader(blob, filename).members()) as members:
            for member in members:
                if len(listing.entries) >= limit:
                    listing.truncated = True
                    break
                listing.entries.append(_entry(member.component, member.name, member.info))
    except (ArchiveError, StoreError) as exc:
        logger.warning("could not list the files of %s: %s", filename, exc)
        listing.error = f"the archive could not be read: {exc}"
    return listing


def _entry(component: str, name: str, info: tarfile.TarInfo) -> dict[str, Any]:
    return {
        "path": name,
        "component": component,
        "kind": _kind(info),
        "size": info.size if info.isreg() else None,
        "mode": f"{info.mode & 0o7777:04o}",
        "link": info.linkname or None,
    }


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "special"


def scripts_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the scripts recorded by the `scripts` check, from a list of latest results."""
    for result in results:
        if result["check"] == "scripts":
            scripts = result["evidence"].get("scripts")
            return [s for s in scripts if isinstance(s, dict)] if isinstance(scripts, list) else []
    return []


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Compare two package facts: dependencies, constraints, files, scripts, licence and size.

    Each argument contains `filename`, `version`, `depends`, `constrains`,
    `licence`, `size`, `files` (a `FileListing`) and `scripts` (from
    `scripts_of`). Sections with no change are empty.
    """
    return {
        "from": {"filename": old["filename"], "version": old["version"]},
        "to": {"filename": new["filename"], "version": new["version"]},
        "depends": _list_diff(old["depends"], new["depends"]),
        "constrains": _list_diff(old["constrains"], new["constrains"]),
        "licence": None if old["licence"] == new["licence"] else {"from": old["licence"], "to": new["licence"]},
        "size": None if old["size"] == new["size"] else {
            "from": old["size"], "to": new["size"], "change": (new["size"] or 0) - (old["size"] or 0),
        },
        "files": _file_diff(old["files"], new["files"]),
        "scripts": _script_diff(old["scripts"], new["scripts"]),
    }


def _list_diff(old: list[str], new: list[str]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
    }


def _file_diff(old: FileListing, new: FileListing) -> dict[str, Any]:
    before = {entry["path"]: entry for entry in old.entries}
    after = {entry["path"]: entry for entry in new.entries}
    changed = []
    for path in sorted(set(before) & set(after)):
        fields = [key for key in ("kind", "size", "mode", "link") if before[path][key] != after[path][key]]
        if fields:
            changed.append({
                "path": path,
                "fields": fields,
                "from": {key: before[path][key] for key in fields},
                "to": {key: after[path][key] for key in fields},
            })
    return {
        "added": [after[path] for path in sorted(set(after) - set(before))],
        "removed": [before[path] for path in sorted(set(before) - set(after))],
        "changed": changed,
        "incomplete": old.truncated or new.truncated or bool(old.error or new.error),
    }


def _script_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before = {script.get("member"): script for script in old}
    after = {script.get("member"): script for script in new}
    changes = []
    for member in sorted(set(before) | set(after), key=str):
        left, right = before.get(member), after.get(member)
        if left is not None and right is not None and left.get("sha256") == right.get("sha256"):
            continue
        if left is None:
            status = "added"
        elif right is None:
            status = "removed"
        else:
            status = "changed"
        changes.append({"member": member, "status": status, "diff": _text_diff(member, left, right)})
    return changes


def _text_diff(member: str, left: dict[str, Any] | None, right: dict[str, Any] | None) -> str:
    old_text = (left or {}).get("text") or ""
    new_text = (right or {}).get("text") or ""
    lines = list(difflib.unified_diff(
        old_text.splitlines(), new_text.splitlines(), fromfile=f"old/{member}", tofile=f"new/{member}", lineterm="",
    ))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more lines not shown"]
    return "\n".join(lines)
