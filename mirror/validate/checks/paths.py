"""Paths check: every member stays inside the install prefix and matches the file manifest.

From the tar headers alone, before anything is written anywhere, the
check fails on:

- absolute member names (`/etc/x`, `\\x`, `C:x`) and names whose `..`
  segments leave the prefix, lexically or through a symlink in the
  archive (`lib/a..b.so` is a plain name and passes);
- symlinks whose target leaves the prefix, resolved from the link's
  folder and through the other symlinks of the archive;
- hardlinks to a path outside the archive or to a name not archived
  before them;
- character and block devices, FIFOs and unknown member types, which
  tarfile would create as regular files;
- setuid and setgid mode bits, and duplicate member names;
- in a `.conda`, payload members in the info tar or `info/` members in
  the payload tar.

Symlink targets and member names are resolved with `/` and `\\` both as
separators and with case-insensitive link lookup, so a name that only
escapes on Windows or macOS also fails.

The payload is then compared with `info/paths.json` (paths_version 1).
Each entry must name a member of the matching type, and hardlink entries
must match the member's size and sha256, computed while streaming. Every
payload file, link and device must be listed. Packages older than
paths.json are compared with `info/files` instead, which gives a WARN.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.catalog.models import CheckOutcome
from mirror.validate.package_reader import (
    COMPONENTS,
    MAX_LISTED_NAMES,
    ArchiveError,
    ArchiveLimits,
    MemberReader,
    PackageMember,
    PackageReader,
)
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.shared_scan import BytesSink, ContentSink, run_alone

logger = logging.getLogger(__name__)

PATHS_JSON = "info/paths.json"
FILES_LIST = "info/files"
# A paths.json lists every payload file, so large packages have large
# ones: about 200 bytes per file.
MAX_MANIFEST_BYTES = 64 * 1024**2
# Linux follows at most 40 symlinks while resolving one path (MAXSYMLINKS).
MAX_LINK_HOPS = 40
# Bounds the work of resolving one path when case-insensitive lookups branch.
MAX_RESOLVE_STEPS = 10_000

_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[/\\]")
_SPECIAL_TYPES = {
    tarfile.CHRTYPE: "char-device",
    tarfile.BLKTYPE: "block-device",
    tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class _Entry:
    """The archive member stored under one name."""

    kind: str  # "file", "symlink", "hardlink", "directory" or "special"
    size: int = 0
    sha256: str | None = None
    linkname: str = ""


@dataclass
class _Inventory:
    """Facts gathered from one pass over a package's members."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    # An insertion-ordered set: payload names in archive order.
    payload: dict[str, None] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)
    manifests: dict[str, bytes] = field(default_factory=dict)

    def add(self, member: str, kind: str, detail: str) -> None:
        self.findings.append({"member": member, "kind": kind, "detail": detail})


class PathsCheck:
    """Check member names, links, types and modes, and compare the payload with its manifest."""

    name = "paths"
    version = "1"

    def __init__(self, limits: ArchiveLimits | None = None, max_manifest_bytes: int = MAX_MANIFEST_BYTES):
        if max_manifest_bytes <= 0:
            raise ValueError(f"max_manifest_bytes must be positive, got {max_manifest_bytes}")
        self.limits = limits or ArchiveLimits()
        self.max_manifest_bytes = max_manifest_bytes

    def run(self, context: CheckContext) -> CheckResult:
        return run_alone(self, context)

    def begin(self, context: CheckContext) -> _PathsVisitor:
        return _PathsVisitor(context.filename, self.max_manifest_bytes)


class _PathsVisitor:
    """Gather the inventory while the members stream, then judge it once the pass ends."""

    components = COMPONENTS

    def __init__(self, filename: str, max_manifest_bytes: int):
        self.filename = filename
        self.max_manifest_bytes = max_manifest_bytes
        self.inventory = _Inventory()
        self.package_format = ""

    def start(self, reader: PackageReader) -> None:
        self.package_format = reader.format

    def visit(self, member: PackageMember) -> ContentSink | None:
        inventory = self.inventory
        name = member.name.rstrip("/")
        info = member.info
        _check_header(inventory, name, info)
        if self.package_format == "conda":
            _check_component(inventory, name, member.component)
        if name in inventory.entries:
            inventory.add(name, "duplicate", "member name appears more than once in the archive")
            return None

        entry = _entry_for(inventory, name, info, member.reader)
        inventory.entries[name] = entry
        if member.component == "pkg" and entry.kind != "directory":
            inventory.payload[name] = None

        # Only payload files are compared with paths.json, so only they are hashed.
        if member.component == "pkg" and entry.kind == "file" and member.reader is not None:
            return _HashSink(inventory, name)
        if member.component == "info" and name in (PATHS_JSON, FILES_LIST) and member.reader is not None:
            return self._manifest_sink(name, member.reader)
        return None

    def is_done(self) -> bool:
        return False

    def finish(self, error: Exception | None) -> CheckResult:
        if isinstance(error, ArchiveError):
            return CheckResult(
                CheckOutcome.FAIL,
                f"archive could not be read to its end, so its paths are unchecked: {error}",
                {"filename": self.filename},
            )
        if error is not None:
            raise error

        _check_links(self.inventory)
        manifest = _check_manifest(self.inventory)
        return _result(self.inventory, manifest)

    def _manifest_sink(self, name: str, reader: MemberReader) -> BytesSink | None:
        if reader.size > self.max_manifest_bytes:
            self.inventory.add(name, "manifest-too-large", f"over the {self.max_manifest_bytes}-byte limit")
            return None
        return BytesSink(lambda content: self.inventory.manifests.update({name: content}))


class _HashSink:
    """Hash one payload file as it streams and store its size and sha256 in the inventory."""

    def __init__(self, inventory: _Inventory, name: str):
        self.inventory = inventory
        self.name = name
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)

    def end(self) -> None:
        self.inventory.entries[self.name] = _Entry("file", self.size, self.digest.hexdigest())


def _check_header(inventory: _Inventory, name: str, info: tarfile.TarInfo) -> None:
    """Record the findings that a member's own header shows."""
    if _is_absolute(name):
        inventory.add(name, "absolute-path", "member name is an absolute path")
    elif _lexical_escape(_segments(name)):
        inventory.add(name, "parent-escape", "'..' segments lead outside the prefix")

    if info.type in _SPECIAL_TYPES:
        inventory.add(name, _SPECIAL_TYPES[info.type], "device and FIFO members are not allowed in a package")
    elif info.type not in tarfile.SUPPORTED_TYPES:
        inventory.add(name, "unknown-type", f"tar type {info.type!r}, which tarfile extracts as a regular file")

    if info.mode & 0o4000:
        inventory.add(name, "setuid", f"mode {info.mode:o} has the setuid bit")
    if info.mode & 0o2000:
        inventory.add(name, "setgid", f"mode {info.mode:o} has the setgid bit")

    if info.islnk():
        _check_hardlink(inventory, name, info.linkname)
    if info.issym() and _is_absolute(info.linkname):
        inventory.add(name, "symlink-escape", f"symlink target {info.linkname!r} is an absolute path")


def _check_component(inventory: _Inventory, name: str, component: str) -> None:
    in_info_folder = name == "info" or name.startswith("info/")
    if component == "info" and not in_info_folder:
        inventory.add(name, "payload-in-info", "the info tar of a .conda may only hold info/ members")
    if component == "pkg" and in_info_folder:
        inventory.add(name, "info-in-payload", "the payload tar of a .conda must not hold info/ members")


def _check_hardlink(inventory: _Inventory, name: str, linkname: str) -> None:
    target = _normalise(linkname)
    if _is_absolute(linkname) or target is None:
        inventory.add(name, "hardlink-outside", f"hardlink target {linkname!r} is outside the archive")
    elif target not in inventory.entries:
        inventory.add(name, "hardlink-missing-target", f"hardlink target {linkname!r} is not archived before it")


def _entry_for(inventory: _Inventory, name: str, info: tarfile.TarInfo, reader: MemberReader | None) -> _Entry:
    """Return the entry for a member's header; a payload file gets its sha256 later, from _HashSink."""
    if info.issym():
        inventory.symlinks[name] = info.linkname
        return _Entry("symlink", linkname=info.linkname)
    if info.islnk():
        target = inventory.entries.get(_normalise(info.linkname) or "")
        if target is not None and target.kind == "file":
            return _Entry("hardlink", target.size, target.sha256, info.linkname)
        return _Entry("hardlink", linkname=info.linkname)
    if info.isdir():
        return _Entry("directory")
    if reader is None:
        return _Entry("special")
    return _Entry("file", info.size)


def _check_links(inventory: _Inventory) -> None:
    """Resolve every symlink target and member folder through the archive's symlinks."""
    if not inventory.symlinks:
        return
    resolver = _Resolver(inventory.symlinks)

    for name, target in inventory.symlinks.items():
        if _is_absolute(target):
            continue  # already recorded from the header
        folder = _segments(name)[:-1]
        problem = resolver.problem(folder + _segments(target))
        if problem == "escape":
            inventory.add(name, "symlink-escape", f"symlink target {target!r} resolves outside the prefix")
        elif problem == "loop":
            detail = f"symlink target {target!r} does not resolve within {MAX_LINK_HOPS} links"
            inventory.add(name, "symlink-loop", detail)

    for name in inventory.entries:
        if _is_absolute(name) or _lexical_escape(_segments(name)):
            continue  # already recorded from the header
        if resolver.problem(_segments(name), follow_last=False) == "escape":
            inventory.add(name, "escape-through-symlink", "member path leaves the prefix through a symlink")


class _Resolver:
    """Resolve paths inside the archive, following its symlinks.

    A path counts as escaping when any way of reading it leaves the
    prefix: lexically, following each link it meets, or not following
    a link whose name differs only in case. Lookups compare case-folded
    names, and a case-folded name shared by several links tries every
    target, so the result also holds on case-insensitive file systems.
    """

    def __init__(self, symlinks: Mapping[str, str]):
        self.links: dict[str, list[str]] = {}
        for name, target in symlinks.items():
            self.links.setdefault(name.casefold(), []).append(target)
        self.steps = 0

    def problem(self, segments: list[str], *, follow_last: bool = True) -> str | None:
        """Return "escape", "loop" or None for `segments` walked from the prefix root."""
        self.steps = 0
        return self._walk((), segments, 0, follow_last)

    def _walk(self, stack: tuple[str, ...], segments: list[str], hops: int, follow_last: bool) -> str | None:
        for index, segment in enumerate(segments):
            self.steps += 1
            if self.steps > MAX_RESOLVE_STEPS:
                return "loop"
            if segment in ("", "."):
                continue
            if segment == "..":
                if not stack:
                    return "escape"
                stack = stack[:-1]
                continue

            stack = (*stack, segment)
            is_last = index == len(segments) - 1
            targets = self.links.get("/".join(stack).casefold(), [])
            if targets and (follow_last or not is_last):
                problem = self._follow(stack[:-1], targets, segments[index + 1 :], hops, follow_last)
                if problem is not None:
                    return problem
        return None

    def _follow(
        self, folder: tuple[str, ...], targets: list[str], rest: list[str], hops: int, follow_last: bool
    ) -> str | None:
        # The walk that does not follow the link goes on in _walk, because
        # on a case-sensitive file system a differently cased name is a folder.
        if hops >= MAX_LINK_HOPS:
            return "loop"
        for target in targets:
            if _is_absolute(target):
                return "escape"
            problem = self._walk(folder, _segments(target) + rest, hops + 1, follow_last)
            if problem is not None:
                return problem
        return None


def _check_manifest(inventory: _Inventory) -> str | None:
    """Compare the payload with paths.json, or info/files without it; return the manifest used."""
    if PATHS_JSON in inventory.manifests:
        listed = _paths_json_entries(inventory)
        if listed is not None:
            _compare_paths_json(inventory, listed)
            _report_unlisted(inventory, {entry["_path"] for entry in listed}, PATHS_JSON)
        return PATHS_JSON

    if FILES_LIST in inventory.manifests:
        _compare_files_list(inventory)
        return FILES_LIST

    if not any(item["kind"] == "manifest-too-large" for item in inventory.findings):
        _report_unlisted(inventory, set(), "a manifest")
    return None


def _paths_json_entries(inventory: _Inventory) -> list[dict[str, Any]] | None:
    try:
        document = json.loads(inventory.manifests[PATHS_JSON])
    except ValueError as exc:
        inventory.add(PATHS_JSON, "manifest-invalid", f"not valid JSON: {exc}")
        return None

    if not isinstance(document, dict) or document.get("paths_version") != 1:
        version = document.get("paths_version") if isinstance(document, dict) else None
        inventory.add(PATHS_JSON, "manifest-invalid", f"paths_version is {version!r}; only version 1 is known")
        return None
    paths = document.get("paths")
    if not isinstance(paths, list) or not all(_is_valid_entry(entry) for entry in paths):
        inventory.add(PATHS_JSON, "manifest-invalid", "'paths' must be a list of objects with a string '_path'")
        return None

    duplicates = [path for path, count in Counter(entry["_path"] for entry in paths).items() if count > 1]
    for path in duplicates:
        inventory.add(path, "duplicate-manifest-entry", f"listed more than once in {PATHS_JSON}")
    return paths


def _is_valid_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("_path"), str)


def _compare_paths_json(inventory: _Inventory, listed: Iterable[dict[str, Any]]) -> None:
    for item in listed:
        path, path_type = item["_path"], item.get("path_type")
        entry = inventory.entries.get(path)
        if path_type == "directory":
            if entry is not None and entry.kind != "directory":
                inventory.add(path, "type-mismatch", f"{PATHS_JSON} lists a directory, the archive has a {entry.kind}")
            continue
        if path_type not in ("hardlink", "softlink"):
            inventory.add(path, "manifest-invalid", f"unknown path_type {path_type!r} in {PATHS_JSON}")
            continue
        if entry is None or path not in inventory.payload:
            inventory.add(path, "missing-from-package", f"listed in {PATHS_JSON} but not in the payload")
            continue
        _compare_entry(inventory, path, path_type, item, entry)


def _compare_entry(
    inventory: _Inventory, path: str, path_type: str, item: Mapping[str, Any], entry: _Entry
) -> None:
    # A softlink entry records the size and hash of the link's target, and
    # some real packages store the link as a plain file, so only its presence counts.
    if path_type == "softlink":
        if entry.kind not in ("symlink", "file"):
            inventory.add(path, "type-mismatch", f"{PATHS_JSON} lists a softlink, the archive has a {entry.kind}")
        return

    if entry.kind not in ("file", "hardlink"):
        inventory.add(path, "type-mismatch", f"{PATHS_JSON} lists a file, the archive has a {entry.kind}")
        return
    size, sha256 = item.get("size_in_bytes"), item.get("sha256")
    if size is not None and size != entry.size:
        inventory.add(path, "size-mismatch", f"{PATHS_JSON} says {size} bytes, the archive has {entry.size}")
    if sha256 is not None and entry.sha256 is not None and str(sha256).lower() != entry.sha256:
        inventory.add(path, "sha256-mismatch", f"{PATHS_JSON} says {sha256}, the archive has {entry.sha256}")


def _compare_files_list(inventory: _Inventory) -> None:
    text = inventory.manifests[FILES_LIST].decode("utf-8", "surrogateescape")
    # conda reads info/files line by line, stripped, without blank or "#" lines.
    listed = {line.strip() for line in text.splitlines()}
    listed = {line for line in listed if line and not line.startswith("#")}
    payload = set(inventory.payload)
    for path in sorted(listed - payload):
        inventory.add(path, "missing-from-package", f"listed in {FILES_LIST} but not in the payload")
    _report_unlisted(inventory, listed, FILES_LIST)


def _report_unlisted(inventory: _Inventory, listed: set[str], manifest: str) -> None:
    for path in inventory.payload:
        if path not in listed:
            inventory.add(path, "not-in-manifest", f"payload member is not listed in {manifest}")


def _result(inventory: _Inventory, manifest: str | None) -> CheckResult:
    findings = inventory.findings
    evidence: dict[str, Any] = {
        "manifest": manifest,
        "payload_members": len(inventory.payload),
        "findings": findings[:MAX_LISTED_NAMES],
        "finding_count": len(findings),
        "finding_kinds": dict(Counter(item["kind"] for item in findings)),
    }
    if findings:
        first_five = "; ".join(f"{item['kind']} {item['member']!r}" for item in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        return CheckResult(CheckOutcome.FAIL, f"{len(findings)} path problems: {first_five}{more}", evidence)

    if manifest == FILES_LIST:
        return CheckResult(CheckOutcome.WARN, f"no paths.json; checked against {FILES_LIST}", evidence)
    if manifest is None:
        return CheckResult(CheckOutcome.WARN, "no paths.json or info/files, and no payload to check", evidence)
    return CheckResult(
        CheckOutcome.PASS,
        f"{len(inventory.payload)} payload members match {PATHS_JSON}; no unsafe names, links or modes",
        evidence,
    )


def _segments(path: str) -> list[str]:
    return _SEPARATORS.split(path)


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path))


def _lexical_escape(segments: list[str]) -> bool:
    depth = 0
    for segment in segments:
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment not in ("", "."):
            depth += 1
    return False


def _normalise(path: str) -> str | None:
    """Return `path` without "." and "" segments and with ".." applied, or None if it escapes."""
    parts: list[str] = []
    for segment in _segments(path):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(segment)
    return "/".join(parts)
