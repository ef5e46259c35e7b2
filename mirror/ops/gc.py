"""`mirror gc`: remove stored blobs that nothing references any more.

A blob is referenced, and kept, when any of these holds:

* an artifact with that sha256 is downloaded and has a membership that is
  not retired (it may still be validated, reviewed or published);
* a file in the channels, quarantine or staging folder is the blob (a hard
  link to it, or a symbolic link into the store), which covers files
  that left an index and wait out the removal grace period;
* the blob file has other hard links (a copy linked from outside the
  mirror's folders is never broken).

An unreferenced blob is removed once it has been unreferenced for
`retention.unreferenced_blob_days`. The catalog does not record the moment
a blob lost its last reference, so gc estimates it. The estimate is the
later of the blob file's modification time (when it was stored) and the
last change of any membership of an artifact with that sha256 (normally
its retirement). Removed
blobs lose their `blobs` row, and downloaded artifacts with that sha256
go back to `discovered`, so a later re-selection downloads them again.

Run it while no sync, validate or publish job runs (the CLI takes the job
lock): a blob stored seconds ago is unreferenced until its artifact row
commits, and only its age protects it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from mirror.catalog.models import Artifact, ArtifactState, Blob, ChannelMembership, MembershipState, utcnow
from mirror.errors import StoreError
from mirror.jobs.context import MirrorContext, audit
from mirror.scheduler.leader import as_utc

logger = logging.getLogger(__name__)

ACTOR = "gc"


@dataclass(frozen=True)
class UnreferencedBlob:
    sha256: str
    size: int
    unreferenced_since: datetime


@dataclass
class GcReport:
    """Result of one garbage collection: blobs found, and those removed unless it was a dry run."""

    dry_run: bool
    blobs: int = 0
    referenced: int = 0
    too_young: list[UnreferencedBlob] = field(default_factory=list)
    removable: list[UnreferencedBlob] = field(default_factory=list)

    @property
    def removable_bytes(self) -> int:
        return sum(blob.size for blob in self.removable)


def collect_garbage(context: MirrorContext, *, min_age: timedelta, dry_run: bool, now: datetime | None = None) -> GcReport:
    """Find unreferenced blobs older than `min_age` and remove them unless `dry_run`."""
    now = now or utcnow()
    report = GcReport(dry_run=dry_run)
    referenced, last_changes = _catalog_references(context)
    linked_names, linked_inodes = _linked_files(context)

    for sha256 in context.store.iter_blobs():
        report.blobs += 1
        path = context.store.path_for(sha256)
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if sha256 in referenced or sha256 in linked_names or (stat.st_dev, stat.st_ino) in linked_inodes or stat.st_nlink > 1:
            report.referenced += 1
            continue

        stored_at = datetime.fromtimestamp(stat.st_mtime, UTC)
        since = max(stored_at, last_changes.get(sha256, stored_at))
        blob = UnreferencedBlob(sha256, stat.st_size, since)
        (report.removable if now - since >= min_age else report.too_young).append(blob)

    if not dry_run:
        _remove(context, report.removable)
    return report


def _catalog_references(context: MirrorContext) -> tuple[set[str], dict[str, datetime]]:
    """Return the sha256 values in use, and per sha256 the last change of its memberships."""
    with context.catalog.session() as session:
        in_use = set(
            session.scalars(
                select(Artifact.sha256).where(
                    Artifact.sha256.is_not(None),
                    Artifact.state == ArtifactState.DOWNLOADED,
                    Artifact.memberships.any(ChannelMembership.state != MembershipState.RETIRED),
                )
            )
        )
        changes = session.execute(
            select(Artifact.sha256, func.max(ChannelMembership.updated_at))
            .join(ChannelMembership, ChannelMembership.artifact_id == Artifact.id)
            .where(Artifact.sha256.is_not(None))
            .group_by(Artifact.sha256)
        ).all()
    return in_use, {sha256: as_utc(changed) for sha256, changed in changes if changed is not None}


def _linked_files(context: MirrorContext) -> tuple[set[str], set[tuple[int, int]]]:
    """Return blob names reached through symbolic links, and (device, inode) of every regular file."""
    config = context.config
    store_root = context.store.root.resolve()
    names: set[str] = set()
    inodes: set[tuple[int, int]] = set()
    for folder in (config.channels_dir, config.data_dir / "quarantine", config.data_dir / "staging"):
        for directory, _subdirs, files in os.walk(folder):
            for name in files:
                path = Path(directory) / name
                try:
                    if path.is_symlink():
                        target = path.resolve()
                        if target.is_relative_to(store_root):
                            names.add(target.name)
                    else:
                        stat = path.stat()
                        inodes.add((stat.st_dev, stat.st_ino))
                except OSError as exc:
                    raise StoreError(
                        f"gc stopped: cannot inspect {path} ({exc.strerror}), so the blob it links is unknown; "
                        "fix its permissions and run gc again"
                    ) from None
    return names, inodes


def _remove(context: MirrorContext, blobs: list[UnreferencedBlob]) -> None:
    for blob in blobs:
        path = context.store.path_for(blob.sha256)
        path.unlink(missing_ok=True)
        with context.catalog.session() as session:
            row = session.get(Blob, blob.sha256)
            if row is not None:
                session.delete(row)
            artifacts = session.scalars(
                select(Artifact).where(Artifact.sha256 == blob.sha256, Artifact.state == ArtifactState.DOWNLOADED)
            )
            for artifact in artifacts:
                artifact.state = ArtifactState.DISCOVERED
                audit(session, ACTOR, "blob_removed", artifact_id=artifact.id, file=artifact.key, sha256=blob.sha256)
        logger.info("gc: removed blob %s (%d bytes, unreferenced since %s)", blob.sha256, blob.size, blob.unreferenced_since.isoformat(timespec="seconds"))
