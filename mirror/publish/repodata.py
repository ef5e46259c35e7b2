"""Build and render one subdir's `repodata.json` and its compressed forms.

Records are the upstream repodata records, published as they are so that
upstream hotfixes reach clients. Only the keys that would tie a record to
the upstream server (`url`, `channel`) are dropped: clients must see
relative file names so their caches stay valid when the mirror moves.

Rendering is deterministic (sorted keys, fixed separators, no times, fixed
compression levels), so the same records always give the same bytes and an
unchanged index is never rewritten.
"""

from __future__ import annotations

import bz2
import json
import re
from collections.abc import Mapping
from typing import Any

import zstandard

from mirror.publish.errors import PublishError

REPODATA = "repodata.json"
REPODATA_ZST = "repodata.json.zst"
REPODATA_BZ2 = "repodata.json.bz2"
CURRENT_REPODATA = "current_repodata.json"
CHANNELDATA = "channeldata.json"

SUBDIR_INDEX_NAMES = (REPODATA, REPODATA_ZST, REPODATA_BZ2, CURRENT_REPODATA)

CONDA_SUFFIX = ".conda"
TAR_BZ2_SUFFIX = ".tar.bz2"
PACKAGE_SUFFIXES = (CONDA_SUFFIX, TAR_BZ2_SUFFIX)

# Keys that name the upstream server; conda's own repodata records have neither.
UPSTREAM_ONLY_KEYS = frozenset({"url", "channel"})

# Level 16 keeps large indexes small while compressing in seconds, not minutes.
ZSTD_LEVEL = 16
BZ2_LEVEL = 9

_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*(\.conda|\.tar\.bz2)")


def is_package_filename(filename: str) -> bool:
    """Return whether `filename` is a bare .conda or .tar.bz2 name with no path in it."""
    return bool(_PACKAGE_NAME.fullmatch(filename)) and ".." not in filename


def packages_key(filename: str) -> str:
    """Return the repodata section for a file: "packages.conda" or "packages"."""
    return "packages.conda" if filename.endswith(CONDA_SUFFIX) else "packages"


def published_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of an upstream record without the keys that name the upstream server."""
    return {key: value for key, value in record.items() if key not in UPSTREAM_ONLY_KEYS}


def empty_repodata(subdir: str) -> dict[str, Any]:
    return {
        "info": {"subdir": subdir},
        "packages": {},
        "packages.conda": {},
        "removed": [],
        "repodata_version": 1,
    }


def build_repodata(subdir: str, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Build a subdir's repodata from file name -> upstream record.

    `removed` stays empty: files that left the index are deleted after a
    grace period instead of being listed.
    """
    repodata = empty_repodata(subdir)
    for filename in sorted(records):
        if not is_package_filename(filename):
            raise PublishError(
                f"{subdir}/{filename!r} is not a package file name; "
                "only bare .conda and .tar.bz2 names can be published"
            )
        repodata[packages_key(filename)][filename] = published_record(records[filename])
    return repodata


def render_json(document: Mapping[str, Any], *, document_name: str) -> bytes:
    """Serialise an index document to the bytes that are published.

    `document_name` appears in the error raised when a record contains a
    value that JSON cannot carry (NaN, or a non-JSON type).
    """
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PublishError(
            f"{document_name} could not be serialised to JSON: {exc}; fix the stored record"
        ) from exc
    return text.encode("ascii")


def compress_zstd(data: bytes) -> bytes:
    # A single-threaded compressor at a fixed level gives the same bytes for the same input.
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)


def compress_bz2(data: bytes) -> bytes:
    return bz2.compress(data, compresslevel=BZ2_LEVEL)
