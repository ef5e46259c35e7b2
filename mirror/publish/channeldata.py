"""Build a channel's `channeldata.json` from the repodata of its subdirs.

For each package name the entry describes its newest version across all
subdirs: the version, the subdirs that carry the name in any version, the
relative path of the record it was taken from, and the descriptive fields
that record has. Descriptive fields come from the repodata record only:
the package's about.json is not read, so most entries carry just a license.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from mirror.publish.ordering import record_rank, record_version

CHANNELDATA_VERSION = 1

# Copied from the newest record when it has them.
DESCRIPTIVE_KEYS = (
    "description",
    "dev_url",
    "doc_url",
    "home",
    "license",
    "license_family",
    "summary",
)

PACKAGE_SECTIONS = ("packages", "packages.conda")


def build_channeldata(
    repodata_by_subdir: Mapping[str, Mapping[str, Any]], subdirs: Iterable[str]
) -> dict[str, Any]:
    """Return the channeldata document for the given per-subdir repodata documents."""
    subdirs_by_name: dict[str, set[str]] = defaultdict(set)
    newest: dict[str, tuple[tuple[Any, ...], str, str, Mapping[str, Any]]] = {}

    for subdir, repodata in repodata_by_subdir.items():
        for section in PACKAGE_SECTIONS:
            for filename, record in repodata.get(section, {}).items():
                name = record.get("name")
                if not isinstance(name, str):
                    continue
                subdirs_by_name[name].add(subdir)
                if record_version(record) is None:
                    continue
                rank = record_rank(record, f"{subdir}/{filename}")
                if name not in newest or rank > newest[name][0]:
                    newest[name] = (rank, subdir, filename, record)

    packages = {}
    for name in sorted(subdirs_by_name):
        packages[name] = _package_entry(sorted(subdirs_by_name[name]), newest.get(name))
    return {
        "channeldata_version": CHANNELDATA_VERSION,
        "packages": packages,
        "subdirs": sorted(set(subdirs)),
    }


def _package_entry(
    subdirs: list[str], newest: tuple[tuple[Any, ...], str, str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"subdirs": subdirs}
    if newest is None:
        # No record of this name has a parseable version, so there is no newest one to describe.
        return entry

    _, subdir, filename, record = newest
    entry["version"] = str(record["version"])
    entry["reference_package"] = f"{subdir}/{filename}"
    for key in DESCRIPTIVE_KEYS:
        value = record.get(key)
        if value is not None:
            entry[key] = value
    return entry
