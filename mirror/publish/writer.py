"""Publish one channel folder: link package files, write indexes, retire old files.

The steps run in an order that keeps every index a reader can fetch
consistent with the files next to it:

1. every package file of the new index is linked into `<subdir>/<filename>`;
2. the index files are written atomically, each subdir's `repodata.json`
   last, then `channeldata.json`;
3. package files that left the index are deleted, but only once they have
   been out of it for `removal_grace_seconds`, so clients that fetched the
   old index can still download them.

Only one publisher may write a channel folder at a time; the caller (the
scheduler's leader) provides that exclusion.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.config.schema import SUBDIR_PATTERN
from mirror.publish.channeldata import build_channeldata
from mirror.publish.current import build_current_repodata
from mirror.publish.errors import PublishError
from mirror.publish.repodata import (
    CHANNELDATA,
    CURRENT_REPODATA,
    REPODATA,
    REPODATA_BZ2,
    REPODATA_ZST,
    SUBDIR_INDEX_NAMES,
    build_repodata,
    compress_bz2,
    compress_zstd,
    is_package_filename,
    render_json,
)
from mirror.publish.state import PublishState, load_state, save_state
from mirror.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

LinkFunction = Callable[[str, Path], None]


@dataclass(frozen=True)
class PublishedFile:
    """An approved package file: its upstream repodata record and the sha256 of its blob.

    The record is published as it is (it carries upstream hotfixes) except
    for `url` and `channel`, which are dropped so clients only see
    relative file names.
    """

    record: Mapping[str, Any]
    sha256: str


@dataclass
class PublishReport:
    """Changes that one publish run made to a channel folder.

    `changed_files` lists index files written or deleted, relative to the
    channel folder. `pending_removal` counts package files that left the
    index and wait out the grace period.
    """

    channel_dir: Path
    changed_files: list[str] = field(default_factory=list)
    linked: int = 0
    removed: int = 0
    pending_removal: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.changed_files or self.linked or self.removed)


def publish_channel(
    channel_dir: Path,
    subdirs: Mapping[str, Mapping[str, PublishedFile]],
    link: LinkFunction,
    *,
    all_subdirs: Iterable[str],
    removal_grace_seconds: float = 3600,
    now: float | None = None,
) -> PublishReport:
    """Publish the approved files of one channel into `channel_dir`.

    `subdirs` maps subdir -> file name -> PublishedFile. Every subdir in
    `all_subdirs` and `subdirs`, and always `noarch`, gets an index, empty
    if it has no files. `link(sha256, destination)` must make the
    destination refer to the blob (FilesystemBlobStore.link does).
    A run that changes nothing writes nothing, so modification times and
    ETags stay the same.
    """
    channel_dir = Path(channel_dir)
    now = time.time() if now is None else now
    exposed = _exposed_subdirs(subdirs, all_subdirs)
    _check_files(subdirs)
    report = PublishReport(channel_dir)
    state = load_state(channel_dir)

    # Links come first. They are recorded even if one fails, so that a later run can tell
    # which files it published.
    try:
        _link_files(channel_dir, subdirs, link, state, report)
    finally:
        save_state(channel_dir, state)

    repodata_by_subdir = {
        subdir: build_repodata(subdir, _records(subdirs.get(subdir, {}))) for subdir in exposed
    }
    for subdir, repodata in repodata_by_subdir.items():
        _write_subdir_indexes(channel_dir, subdir, repodata, report)
    channeldata = render_json(
        build_channeldata(repodata_by_subdir, exposed), document_name="channeldata"
    )
    _write(channel_dir, CHANNELDATA, channeldata, report)

    _delete_retired_indexes(channel_dir, state.subdirs - set(exposed), report)
    state.subdirs = set(exposed)

    _remove_departed_files(channel_dir, subdirs, state, now, removal_grace_seconds, report)
    save_state(channel_dir, state)

    logger.info(
        "published %s: %d index files changed, %d package files linked, %d removed, "
        "%d waiting for removal",
        channel_dir,
        len(report.changed_files),
        report.linked,
        report.removed,
        report.pending_removal,
    )
    return report


def _exposed_subdirs(subdirs: Mapping[str, Any], all_subdirs: Iterable[str]) -> list[str]:
    exposed = sorted({*all_subdirs, *subdirs, "noarch"})
    for subdir in exposed:
        if not isinstance(subdir, str) or not SUBDIR_PATTERN.fullmatch(subdir):
            raise PublishError(
                f"{subdir!r} is not a conda subdir; use names such as linux-64 or noarch"
            )
    return exposed


def _check_files(subdirs: Mapping[str, Mapping[str, PublishedFile]]) -> None:
    for subdir, files in subdirs.items():
        for filename, published in files.items():
            _check_file(subdir, filename, published)


def _check_file(subdir: str, filename: str, published: PublishedFile) -> None:
    where = f"{subdir}/{filename!r}"
    if not is_package_filename(filename):
        raise PublishError(
            f"{where} is not a package file name; "
            "only bare .conda and .tar.bz2 names can be published"
        )
    if not isinstance(published.record, Mapping):
        raise PublishError(
            f"{where}: the record must be a mapping, got {type(published.record).__name__}"
        )
    if not SHA256_PATTERN.match(published.sha256):
        raise PublishError(
            f"{where}: invalid blob sha256 {published.sha256!r}; expected 64 lowercase hex digits"
        )

    # An index must never promise a hash that the linked file does not have.
    record_sha256 = published.record.get("sha256")
    if record_sha256 is not None and str(record_sha256).lower() != published.sha256:
        raise PublishError(
            f"{where}: the record's sha256 {record_sha256} differs from the blob "
            f"{published.sha256}; re-sync the package before publishing it"
        )


def _records(files: Mapping[str, PublishedFile]) -> dict[str, Mapping[str, Any]]:
    return {filename: published.record for filename, published in files.items()}


def _link_files(
    channel_dir: Path,
    subdirs: Mapping[str, Mapping[str, PublishedFile]],
    link: LinkFunction,
    state: PublishState,
    report: PublishReport,
) -> None:
    for subdir in sorted(subdirs):
        for filename, published in sorted(subdirs[subdir].items()):
            destination = channel_dir / subdir / filename
            entry = state.entry(subdir, filename)
            if entry is not None and entry.sha256 == published.sha256 and destination.exists():
                entry.left_index_at = None
                continue
            link(published.sha256, destination)
            state.record_link(subdir, filename, published.sha256)
            report.linked += 1


def _write_subdir_indexes(
    channel_dir: Path, subdir: str, repodata: Mapping[str, Any], report: PublishReport
) -> None:
    """Write all index files of one subdir from one repodata snapshot.

    `repodata.json` is written last. While it still contains the old bytes,
    the next run rebuilds the compressed forms, so an interrupted run cannot
    leave them stale for good. When it already contains the new bytes, they
    are not compressed again.
    """
    plain = render_json(repodata, document_name=f"repodata of {subdir}")
    current = render_json(
        build_current_repodata(repodata), document_name=f"current_repodata of {subdir}"
    )
    subdir_dir = channel_dir / subdir

    outputs: list[tuple[str, bytes]] = []
    if not _compressed_forms_current(subdir_dir, plain):
        outputs += [(REPODATA_ZST, compress_zstd(plain)), (REPODATA_BZ2, compress_bz2(plain))]
    outputs += [(CURRENT_REPODATA, current), (REPODATA, plain)]

    for name, data in outputs:
        _write(channel_dir, f"{subdir}/{name}", data, report)


def _compressed_forms_current(subdir_dir: Path, plain: bytes) -> bool:
    repodata_path = subdir_dir / REPODATA
    try:
        unchanged = (
            repodata_path.stat().st_size == len(plain) and repodata_path.read_bytes() == plain
        )
    except FileNotFoundError:
        return False
    return (
        unchanged
        and (subdir_dir / REPODATA_ZST).is_file()
        and (subdir_dir / REPODATA_BZ2).is_file()
    )


def _write(channel_dir: Path, relative: str, data: bytes, report: PublishReport) -> None:
    if atomic_write_bytes(channel_dir / relative, data):
        report.changed_files.append(relative)


def _delete_retired_indexes(channel_dir: Path, retired: set[str], report: PublishReport) -> None:
    """Delete the index files of subdirs the channel no longer exposes.

    Their package files are deleted later, after the grace period, so an
    index is always gone before the files it lists.
    """
    for subdir in sorted(retired):
        for name in SUBDIR_INDEX_NAMES:
            path = channel_dir / subdir / name
            if path.is_file():
                path.unlink()
                report.changed_files.append(f"{subdir}/{name}")
        logger.info(
            "subdir %s is no longer exposed in %s; its index was deleted", subdir, channel_dir
        )


def _remove_departed_files(
    channel_dir: Path,
    subdirs: Mapping[str, Mapping[str, PublishedFile]],
    state: PublishState,
    now: float,
    grace_seconds: float,
    report: PublishReport,
) -> None:
    for subdir, entries in sorted(state.files.items()):
        indexed = subdirs.get(subdir, {})
        for filename, entry in sorted(entries.items()):
            if filename in indexed:
                continue
            if entry.left_index_at is None:
                entry.left_index_at = now
            if now - entry.left_index_at < grace_seconds:
                report.pending_removal += 1
                continue
            _delete_package_file(channel_dir / subdir / filename)
            state.forget(subdir, filename)
            report.removed += 1


def _delete_package_file(path: Path) -> None:
    # Names reach here only after is_package_filename(), so no index or hidden file is deleted.
    if path.is_dir() and not path.is_symlink():
        logger.warning("%s is a directory, not a published package file; it is left in place", path)
        return
    path.unlink(missing_ok=True)
    logger.info("deleted %s, which left the index at least the grace period ago", path)
