"""`mirror verify`: rehash every published package file and compare it with the catalog and the store.

For each `channels/<channel>/<subdir>/*.conda|*.tar.bz2` file:

* the catalog must know the file for that channel (a membership of an
  artifact with that subdir and file name);
* its sha256 must equal the artifact's sha256;
* the store must hold that blob. When the published file is not the
  blob itself (a symbolic link, or a copy after a restore), the blob is
  rehashed too.

Every file that a subdir's `repodata.json` lists must also exist, because
a client that finds it missing fails its install.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from mirror.catalog.models import Artifact, ChannelMembership
from mirror.jobs.context import MirrorContext
from mirror.publish.repodata import is_package_filename

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Difference:
    channel: str
    subdir: str
    filename: str
    problem: str


@dataclass
class VerifyReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)


def verify_published(context: MirrorContext) -> VerifyReport:
    report = VerifyReport()
    expected = _catalog_hashes(context)
    channels_dir = context.config.channels_dir
    if not channels_dir.is_dir():
        return report

    for channel_dir in sorted(p for p in channels_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for subdir_dir in sorted(p for p in channel_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(subdir_dir.iterdir()):
                if is_package_filename(path.name):
                    key = (channel_dir.name, subdir_dir.name, path.name)
                    problem = _verify_file(context, path, expected.get(key))
                    report.checked += 1
                    if problem:
                        report.differences.append(Difference(*key, problem))
            report.differences.extend(_missing_listed(channel_dir.name, subdir_dir))
    for difference in report.differences:
        logger.warning("verify: %s/%s/%s: %s", difference.channel, difference.subdir, difference.filename, difference.problem)
    return report


def _catalog_hashes(context: MirrorContext) -> dict[tuple[str, str, str], str | None]:
    with context.catalog.session() as session:
        rows = session.execute(
            select(ChannelMembership.channel, Artifact.subdir, Artifact.filename, Artifact.sha256).join(
                Artifact, ChannelMembership.artifact_id == Artifact.id
            )
        ).all()
    return {(channel, subdir, filename): sha256 for channel, subdir, filename, sha256 in rows}


def _verify_file(context: MirrorContext, path: Path, expected: str | None) -> str | None:
    if expected is None:
        return "not in the catalog for this channel"

    actual = sha256_of(path)
    if actual != expected:
        return f"sha256 {actual} differs from the catalog's {expected}; run 'mirror publish' to relink it from the store"

    blob = context.store.path_for(expected)
    if not blob.is_file():
        return f"blob {expected} is missing from the store"
    if not os.path.samefile(blob, path) and sha256_of(blob) != expected:
        return f"store blob {expected} does not match its sha256"
    return None


def _missing_listed(channel: str, subdir_dir: Path) -> list[Difference]:
    index = subdir_dir / "repodata.json"
    try:
        document = json.loads(index.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        return [Difference(channel, subdir_dir.name, "repodata.json", f"cannot be read: {exc}")]

    listed = set(document.get("packages", {})) | set(document.get("packages.conda", {}))
    return [
        Difference(channel, subdir_dir.name, filename, "listed in repodata.json but missing")
        for filename in sorted(listed)
        if not (subdir_dir / filename).is_file()
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
