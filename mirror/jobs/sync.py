"""Sync: fetch upstream repodata, select the whitelisted files, download and store them.

The selection is written to the catalog before any download starts, and
each verified file is committed as soon as it is stored. A crash or
Ctrl-C therefore loses at most the files in flight, and the next run
finds what is stored and fetches only the rest. Publishing is a separate step,
so an interrupted sync never changes what clients see.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mirror.catalog.models import (
    Artifact,
    ArtifactState,
    Blob,
    ChannelMembership,
    MembershipState,
    RepodataState,
    RunStatus,
    utcnow,
)
from mirror.config.load import load_whitelist
from mirror.config.schema import UpstreamConfig, WhitelistEntry
from mirror.errors import MirrorError
from mirror.jobs.context import MirrorContext, audit
from mirror.jobs.runs import recorded_run, start_run
from mirror.jobs.apply import UpstreamPlan, apply_plan, record_problem
from mirror.selection import Selection, SubdirIndex, select_entry
from mirror.upstream.client import CacheValidators, ExpectedFile, UpstreamClient
from mirror.upstream.redact import redact_url

logger = logging.getLogger(__name__)

ACTOR = "sync"


@dataclass
class SyncReport:
    run_id: int
    status: RunStatus = RunStatus.RUNNING
    selected: int = 0
    discovered: int = 0
    records_updated: int = 0
    retired: int = 0
    downloaded: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "selected": self.selected, "discovered": self.discovered,
            "records_updated": self.records_updated, "retired": self.retired,
            "downloaded": self.downloaded, "reused": self.reused, "failed": len(self.failed),
            "unresolved": len(self.unresolved),
        }


ProgressCallback = Callable[[str, int, int], None]


class SyncJob:
    """One sync run.

    `upstreams` limits the run to some upstreams (a scheduled run syncs
    one); the others are left as they are. `entries` replaces reading the
    whitelist file, so a service can keep using the last valid whitelist
    while the file on disk is broken.
    """

    def __init__(
        self,
        context: MirrorContext,
        *,
        upstreams: Collection[str] | None = None,
        entries: list[WhitelistEntry] | None = None,
        progress: ProgressCallback | None = None,
    ):
        self.context = context
        self.config = context.config
        self.upstreams = set(upstreams) if upstreams is not None else None
        self.entries = entries
        self.progress = progress or (lambda _phase, _done, _total: None)

    async def run(self) -> SyncReport:
        entries = self.entries if self.entries is not None else load_whitelist(self.config)
        report = SyncReport(run_id=start_run(self.context.catalog, "sync"))
        logger.info("sync run %d started with %d whitelist entries", report.run_id, len(entries))

        def outcome() -> RunStatus:
            return RunStatus.PARTIAL if (report.failed or report.errors) else RunStatus.SUCCESS

        with recorded_run(
            self.context.catalog, report, counts=report.counts,
            errors=lambda: report.errors + report.failed, outcome=outcome,
        ):
            try:
                await self._sync_upstreams(entries, report)
            except (asyncio.CancelledError, KeyboardInterrupt):
                logger.warning("sync run %d interrupted; finished downloads are kept", report.run_id)
                raise
            except Exception as exc:
                report.errors.append(f"{type(exc).__name__}: {exc}")
                raise
        return report

    async def _sync_upstreams(self, entries: list[WhitelistEntry], report: SyncReport) -> None:
        synced_upstreams = []
        for name, upstream in self.config.upstreams.items():
            if self.upstreams is not None and name not in self.upstreams:
                continue
            own = [entry for entry in entries if entry.upstream == name]
            if not own:
                continue
            plan = await self._plan_upstream(name, upstream, own, report)
            if plan is not None:
                with self.context.catalog.session() as session:
                    apply_plan(session, plan, report)
                synced_upstreams.append(name)
        await self._download_missing(synced_upstreams, report)

    # Repodata and selection

    async def _plan_upstream(
        self, name: str, upstream: UpstreamConfig, entries: list[WhitelistEntry], report: SyncReport
    ) -> UpstreamPlan | None:
        subdirs = sorted({subdir for entry in entries for subdir in (entry.subdirs or upstream.subdirs)})
        if "noarch" in upstream.subdirs and "noarch" not in subdirs:
            subdirs.append("noarch")

        fetched: dict[str, bool] = {}
        try:
            async with UpstreamClient(name, upstream, tmp_dir=self.config.tmp_dir) as client:
                for subdir in subdirs:
                    fetched[subdir] = await self.fetch_repodata(client, name, subdir)
        except MirrorError as exc:
            message = f"upstream {name}: repodata could not be fetched: {exc}"
            logger.error("%s; its packages are left as they were", message)
            report.errors.append(message)
            return None

        indexes = {subdir: SubdirIndex(name, subdir, self._repodata_path(name, subdir)) for subdir in subdirs}
        try:
            return self._select(name, upstream, entries, indexes, fetched, report)
        finally:
            for index in indexes.values():
                report.errors.extend(f"{name}/{p.subdir}/{p.filename}: {p.reason}" for p in index.problems)
                index.close()

    async def fetch_repodata(self, client: UpstreamClient, upstream: str, subdir: str) -> bool:
        """Fetch one subdir's repodata into the cache; return whether it changed since the last run."""
        destination = self._repodata_path(upstream, subdir)
        with self.context.catalog.session() as session:
            state = session.scalar(
                select(RepodataState).filter_by(upstream=upstream, subdir=subdir)
            )
            cached = None
            if state is not None and destination.is_file():
                cached = CacheValidators(url=state.url, etag=state.etag, last_modified=state.last_modified)

        result = await client.fetch_repodata(subdir, destination, cached)
        if result.not_modified:
            logger.info("upstream %s subdir %s: repodata unchanged (304)", upstream, subdir)
            return False

        with self.context.catalog.session() as session:
            state = session.scalar(select(RepodataState).filter_by(upstream=upstream, subdir=subdir))
            if state is None:
                state = RepodataState(upstream=upstream, subdir=subdir, url=result.url)
                session.add(state)
            state.url = result.url
            state.etag = result.etag
            state.last_modified = result.last_modified
            state.sha256 = result.sha256
            state.fetched_at = utcnow()
        logger.info("upstream %s subdir %s: repodata fetched from %s", upstream, subdir, redact_url(result.url))
        return True

    def _select(self, name, upstream, entries, indexes, fetched, report) -> UpstreamPlan:
        plan = UpstreamPlan(name=name)
        for entry in entries:
            entry_subdirs = [s for s in (entry.subdirs or upstream.subdirs) if s in indexes]
            selection: Selection = select_entry(entry, entry_subdirs, indexes)
            channel_choice = plan.chosen.setdefault(entry.channel, {})
            for key, chosen in selection.chosen.items():
                channel_choice.setdefault(key, chosen.reason)
            report.unresolved.extend(
                f"{name}/{u.subdir}/{u.filename} needs {u.dependency!r}: {u.reason}" for u in selection.unresolved
            )
            report.warnings.extend(selection.warnings)
            report.warnings.extend(
                f"whitelist spec {text!r} for channel {entry.channel} matches no upstream record"
                for text in selection.unmatched_specs
            )

        # Raw records: skip files already catalogued when their repodata did not change.
        wanted: dict[str, set[str]] = {}
        known = self._known_files(name)
        for choice in plan.chosen.values():
            for subdir, filename in choice:
                if fetched.get(subdir) or (subdir, filename) not in known:
                    wanted.setdefault(subdir, set()).add(filename)
        for subdir, filenames in wanted.items():
            for filename, raw in indexes[subdir].raw_records(filenames).items():
                problem = record_problem(filename, raw)
                if problem is None:
                    plan.records[(subdir, filename)] = raw
                    continue
                report.errors.append(f"{name}/{subdir}/{filename}: skipped: {problem}")
                for choice in plan.chosen.values():
                    choice.pop((subdir, filename), None)
        report.warnings.extend(_twin_differences(plan.records))
        plan.removed = {subdir: index.removed for subdir, index in indexes.items()}
        report.selected += len({key for choice in plan.chosen.values() for key in choice})
        return plan

    def _known_files(self, upstream: str) -> set[tuple[str, str]]:
        with self.context.catalog.session() as session:
            rows = session.execute(select(Artifact.subdir, Artifact.filename).filter_by(upstream=upstream))
            return {(subdir, filename) for subdir, filename in rows}

    # Downloads

    async def _download_missing(self, upstreams: list[str], report: SyncReport) -> None:
        for name in upstreams:
            todo = self._artifacts_to_fetch(name)
            if not todo:
                continue
            upstream = self.config.upstreams[name]
            total = len(todo)
            done = 0
            self.progress(f"download {name}", done, total)
            async with UpstreamClient(name, upstream, tmp_dir=self.config.tmp_dir) as client:
                limit = asyncio.Semaphore(upstream.max_connections)

                async def fetch_one(artifact_id: int, subdir: str, expected: ExpectedFile) -> None:
                    nonlocal done
                    async with limit:
                        await self._fetch_artifact(client, artifact_id, subdir, expected, report)
                    done += 1
                    self.progress(f"download {name}", done, total)

                await asyncio.gather(*(fetch_one(*item) for item in todo))

    def _artifacts_to_fetch(self, upstream: str) -> list[tuple[int, str, ExpectedFile]]:
        todo = []
        with self.context.catalog.session() as session:
            rows = session.scalars(
                select(Artifact).filter(
                    Artifact.upstream == upstream,
                    Artifact.memberships.any(ChannelMembership.state != MembershipState.RETIRED),
                )
            )
            for artifact in rows:
                stored = artifact.sha256 and self.context.store.has(artifact.sha256)
                if artifact.state == ArtifactState.DOWNLOADED and stored:
                    continue
                if stored:
                    # Same bytes already stored for another upstream or channel: no download.
                    artifact.state = ArtifactState.DOWNLOADED
                    artifact.downloaded_at = utcnow()
                    artifact.last_error = None
                    continue
                expected = ExpectedFile(artifact.filename, artifact.size, artifact.sha256, artifact.md5)
                todo.append((artifact.id, artifact.subdir, expected))
        return todo

    async def _fetch_artifact(self, client, artifact_id: int, subdir: str, expected: ExpectedFile, report) -> None:
        try:
            path = await client.download(subdir, expected)
            sha256 = expected.sha256 or await asyncio.to_thread(_sha256_of, path)
            size = path.stat().st_size
            self.context.store.add_verified_file(path, sha256)
        except MirrorError as exc:
            logger.error("download of %s/%s failed: %s", subdir, expected.filename, exc)
            report.failed.append(f"{subdir}/{expected.filename}: {exc}")
            with self.context.catalog.session() as session:
                artifact = session.get(Artifact, artifact_id)
                artifact.state = ArtifactState.DOWNLOAD_FAILED
                artifact.last_error = str(exc)
            return

        with self.context.catalog.session() as session:
            artifact = session.get(Artifact, artifact_id)
            artifact.state = ArtifactState.DOWNLOADED
            artifact.sha256 = sha256
            artifact.downloaded_at = utcnow()
            artifact.last_error = None
            if session.get(Blob, sha256) is None:
                session.add(Blob(sha256=sha256, size=size))
            audit(session, ACTOR, "downloaded", artifact_id=artifact_id, file=artifact.key, sha256=sha256)
        report.downloaded += 1

    def _repodata_path(self, upstream: str, subdir: str) -> Path:
        return self.config.cache_dir / upstream / subdir / "repodata.json"


TWIN_FIELDS = ("depends", "constrains", "license", "track_features", "noarch")


def _twin_differences(records: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Warn where the .conda and .tar.bz2 files of one build disagree on metadata."""
    warnings = []
    for (subdir, filename), record in records.items():
        if not filename.endswith(".conda"):
            continue
        twin = records.get((subdir, filename[: -len(".conda")] + ".tar.bz2"))
        if twin is None:
            continue
        differing = [key for key in TWIN_FIELDS if record.get(key) != twin.get(key)]
        if differing:
            warnings.append(
                f"{subdir}/{filename} and its .tar.bz2 twin differ in {', '.join(differing)}; "
                "both are published as upstream lists them"
            )
    return warnings


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
