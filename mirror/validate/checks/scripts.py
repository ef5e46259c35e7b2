"""Scripts check: find the payload files that run code on install, activation or start-up.

conda runs these from a package (conda 23-25, `conda.core.link` and
`conda.activate`):

- link scripts `bin/.<name>-<action>.sh` and `Scripts/.<name>-<action>.bat`,
  where the action is pre-link, post-link or pre-unlink and `<name>` is
  the package name. Noarch python packages keep them in `python-scripts/`,
  which conda links into `bin/` or `Scripts/`;
- activation scripts below `etc/conda/activate.d/` and
  `etc/conda/deactivate.d/`, sourced by `conda activate` and `deactivate`.

Python also runs every line starting with "import" of a `.pth` file in
site-packages at interpreter start, so `.pth` files count as scripts too.

The check keeps each script's text as evidence for a reviewer, capped per
file and in total. It also records `info/link.json` entry points and the
`info/has_prefix` entries, which are informational only. The outcome is
WARN when any script or `.pth` file exists and PASS otherwise: the
judgement is left to the channel's review policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.metadata import parse_filename
from mirror.validate.package_reader import (
    COMPONENTS,
    MAX_LISTED_NAMES,
    ArchiveError,
    ArchiveLimits,
    PackageMember,
    PackageReader,
)
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.shared_scan import BytesSink, ContentSink, run_alone

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES_PER_FILE = 64 * 1024
MAX_TEXT_BYTES_TOTAL = 1024 * 1024
# Informational files are kept only up to this size.
MAX_INFO_FILE_BYTES = 64 * 1024

LINK_JSON = "info/link.json"
HAS_PREFIX = "info/has_prefix"

_LINK_SCRIPT = re.compile(
    r"^(?:bin|Scripts|python-scripts)/\.(?P<package>.+)-(?P<action>pre-link|post-link|pre-unlink)\.(?:sh|bat)$"
)
_ACTIVATION_SCRIPT = re.compile(r"^etc/conda/(?P<action>activate|deactivate)\.d/.+")
_PTH_FILE = re.compile(r"(?:^|/)site-packages/(?:.+/)?[^/]+\.pth$", re.IGNORECASE)


@dataclass
class _Findings:
    scripts: list[dict[str, Any]] = field(default_factory=list)
    text_bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class ScriptsCheck:
    """Collect link scripts, activation scripts and .pth files, with their text, as evidence."""

    name = "scripts"
    version = "1"

    def __init__(
        self,
        limits: ArchiveLimits | None = None,
        max_text_bytes_per_file: int = MAX_TEXT_BYTES_PER_FILE,
        max_text_bytes_total: int = MAX_TEXT_BYTES_TOTAL,
    ):
        if max_text_bytes_per_file <= 0 or max_text_bytes_total <= 0:
            raise ValueError(
                f"text caps must be positive, got {max_text_bytes_per_file} per file "
                f"and {max_text_bytes_total} in total"
            )
        self.limits = limits or ArchiveLimits()
        self.max_text_bytes_per_file = max_text_bytes_per_file
        self.max_text_bytes_total = max_text_bytes_total

    def run(self, context: CheckContext) -> CheckResult:
        return run_alone(self, context)

    def begin(self, context: CheckContext) -> _ScriptsVisitor:
        return _ScriptsVisitor(self, context.filename, _package_name(context))


class _ScriptsVisitor:
    """Collect scripts and informational files while the members stream."""

    components = COMPONENTS

    def __init__(self, check: ScriptsCheck, filename: str, package_name: str | None):
        self.check = check
        self.filename = filename
        self.package_name = package_name
        self.findings = _Findings()

    def start(self, reader: PackageReader) -> None:
        pass

    def visit(self, member: PackageMember) -> ContentSink | None:
        if member.component == "info":
            return _record_info_file(self.findings, member)
        kind, details = _classify(member.name, self.package_name)
        if kind is None or member.info.isdir():
            return None

        script = {"member": member.name, "kind": kind, **details}
        if member.reader is None:
            self.findings.scripts.append({**script, "text": None, "link_target": member.info.linkname or None})
            return None
        budget = min(self.check.max_text_bytes_per_file, self.check.max_text_bytes_total - self.findings.text_bytes)
        return _PrefixSink(max(budget, 0), lambda prefix, digest, size: self._add(script, budget, prefix, digest, size))

    def is_done(self) -> bool:
        return False

    def finish(self, error: Exception | None) -> CheckResult:
        if isinstance(error, ArchiveError):
            return CheckResult(
                CheckOutcome.FAIL,
                f"archive could not be read to its end, so its scripts are unchecked: {error}",
                {"filename": self.filename},
            )
        if error is not None:
            raise error
        return _result(self.findings)

    def _add(self, script: dict[str, Any], budget: int, text: bytes, digest: str, size: int) -> None:
        self.findings.text_bytes += len(text)
        content: dict[str, Any] = {
            "size": size,
            "sha256": digest,
            "text": text.decode("utf-8", "replace") if budget > 0 else None,
            "truncated": len(text) < size,
        }
        if budget <= 0:
            content["omitted"] = f"the evidence already holds {self.check.max_text_bytes_total} bytes of script text"
        self.findings.scripts.append({**script, **content})


class _PrefixSink:
    """Hash a whole member and keep its first `keep` bytes, then pass both and the size to `on_end`."""

    def __init__(self, keep: int, on_end: Callable[[bytes, str, int], None]):
        self.keep = keep
        self.on_end = on_end
        self.prefix = bytearray()
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        if len(self.prefix) < self.keep:
            self.prefix += chunk[: self.keep - len(self.prefix)]

    def end(self) -> None:
        self.on_end(bytes(self.prefix), self.digest.hexdigest(), self.size)


def _package_name(context: CheckContext) -> str | None:
    name = context.record.get("name")
    if isinstance(name, str) and name:
        return name
    try:
        return parse_filename(context.filename)["name"]
    except ValueError:
        return None


def _classify(name: str, package_name: str | None) -> tuple[str | None, dict[str, Any]]:
    """Return the script kind of a payload member name, or None, with kind-specific details."""
    link = _LINK_SCRIPT.match(name)
    if link:
        # conda runs only the script named after the package being linked.
        return link["action"], {"runs_for_package": link["package"] == package_name}
    activation = _ACTIVATION_SCRIPT.match(name)
    if activation:
        return activation["action"], {}
    if _PTH_FILE.search(name):
        return "pth", {}
    return None, {}


def _record_info_file(findings: _Findings, member: PackageMember) -> BytesSink | None:
    if member.reader is None or member.name not in (LINK_JSON, HAS_PREFIX):
        return None
    key = "link_json" if member.name == LINK_JSON else "has_prefix"
    if member.reader.size > MAX_INFO_FILE_BYTES:
        findings.info[key] = {"omitted": f"{member.reader.size} bytes, over the {MAX_INFO_FILE_BYTES}-byte cap"}
        return None

    member.reader.check_fits_in_memory()
    summarise = _summarise_link_json if member.name == LINK_JSON else _summarise_has_prefix
    return BytesSink(lambda raw: findings.info.update({key: summarise(raw)}))


def _summarise_has_prefix(raw: bytes) -> dict[str, Any]:
    lines = [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return {"count": len(lines), "entries": lines[:MAX_LISTED_NAMES]}


def _summarise_link_json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        return {"invalid": f"not valid JSON: {exc}"}
    noarch = document.get("noarch") if isinstance(document, dict) else None
    if not isinstance(noarch, dict):
        return {"noarch": None, "entry_points": []}

    entry_points = noarch.get("entry_points")
    entry_points = [str(item) for item in entry_points] if isinstance(entry_points, list) else []
    return {"noarch": str(noarch.get("type")), "entry_points": entry_points[:MAX_LISTED_NAMES]}


def _result(findings: _Findings) -> CheckResult:
    scripts = findings.scripts
    evidence: dict[str, Any] = {
        "scripts": scripts[:MAX_LISTED_NAMES],
        "script_count": len(scripts),
        "text_bytes": findings.text_bytes,
        **findings.info,
    }
    if not scripts:
        return CheckResult(CheckOutcome.PASS, "no link scripts, activation scripts or .pth files", evidence)

    first_five = ", ".join(f"{item['kind']} {item['member']}" for item in scripts[:5])
    more = f" and {len(scripts) - 5} more" if len(scripts) > 5 else ""
    summary = f"{len(scripts)} scripts run on install or start-up: {first_five}{more}"
    return CheckResult(CheckOutcome.WARN, summary, evidence)
