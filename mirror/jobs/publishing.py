"""Publish: write each internal channel's index from its approved files.

Only memberships in state `approved` whose file is verified and stored
are published. The writer links package files before it swaps in the new
index, so no published record ever points at a missing file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from mirror.catalog.models import Artifact, ArtifactState, ChannelMembership, MembershipState, RunStatus, utcnow
from mirror.config.load import load_whitelist
from mirror.errors import ConfigError
from mirror.jobs.context import MirrorContext, audit
from mirror.jobs.runs import recorded_run, start_run
from mirror.publish.writer import PublishedFile, publish_channel

logger = logging.getLogger(__name__)

MAX_CONSISTENCY_ROUNDS = 5
FORMAT_SUFFIXES = {"both": (".conda", ".tar.bz2"), "conda": (".conda",), "tar.bz2": (".tar.bz2",)}


@dataclass
class PublishReport:
    run_id: int
    status: RunStatus = RunStatus.RUNNING
    channels: dict[str, int] = field(default_factory=dict)
    changed_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class PublishJob:
    def __init__(self, context: MirrorContext, *, removal_grace_seconds: float | None = None):
        self.context = context
        self.config = context.config
        if removal_grace_seconds is None:
            removal_grace_seconds = context.config.publish.removal_grace_seconds
        self.removal_grace_seconds = removal_grace_seconds

    def run(self) -> PublishReport:
        report = PublishReport(run_id=start_run(self.context.catalog, "publish"))

        def counts() -> dict:
            return {"channels": report.channels, "changed_files": len(report.changed_files)}

        with recorded_run(self.context.catalog, report, counts=counts, errors=lambda: report.warnings):
            subdirs_by_channel = self._channel_subdirs()
            for channel in self.config.channels:
                self._publish_one(channel, subdirs_by_channel.get(channel, {"noarch"}), report)
        return report

    def _hold_inconsistent(
        self, channel: str, files: dict[str, dict[str, PublishedFile]], report: PublishReport
    ) -> dict[tuple[str, str], str]:
        """Drop files whose dependencies the channel cannot satisfy; return why each was held.

        Dropping one file can strand files that need it, so the check repeats
        until the set is stable.
        """
        from mirror.validate.consistency import check_channel_consistency
        from mirror.validate.quarantine import QuarantineFile, build_quarantine_channel

        held: dict[tuple[str, str], str] = {}
        staging = self.config.data_dir / "staging" / channel
        for _ in range(MAX_CONSISTENCY_ROUNDS):
            staged = [
                QuarantineFile(subdir, filename, item.record, self.context.store.path_for(item.sha256))
                for subdir, by_name in files.items()
                for filename, item in by_name.items()
            ]
            root = build_quarantine_channel(staging, staged)
            present = sorted({item.subdir for item in staged} | {"noarch"})
            found = check_channel_consistency(root, present, cache_dir=self.config.tmp_dir / "consistency-cache")
            if not found.problems:
                break
            for problem in found.problems:
                missing = f"needs {problem.dependency!r}" if problem.dependency else "cannot be solved"
                reason = f"approved but not published: {missing} in channel {channel}: {problem.reason}"
                held[(problem.subdir, problem.filename)] = reason
                files.get(problem.subdir, {}).pop(problem.filename, None)
                report.warnings.append(f"{channel}/{problem.subdir}/{problem.filename}: {reason}")
        return held

    def _channel_subdirs(self) -> dict[str, set[str]]:
        """Return every subdir each channel exposes: those its whitelist entries sync, plus noarch."""
        try:
            entries = load_whitelist(self.config)
        except ConfigError as exc:
            # Publishing must not stop on a bad whitelist: the approved set is in the catalog.
            logger.error("whitelist is invalid, publishing with the subdirs of every upstream: %s", exc)
            entries = []
        subdirs: dict[str, set[str]] = {}
        for entry in entries:
            upstream = self.config.upstreams[entry.upstream]
            subdirs.setdefault(entry.channel, {"noarch"}).update(entry.subdirs or upstream.subdirs)
        return subdirs

    def _publish_one(self, channel: str, subdirs: set[str], report: PublishReport) -> None:
        suffixes = FORMAT_SUFFIXES[self.config.channels[channel].formats]
        files: dict[str, dict[str, PublishedFile]] = {}

        with self.context.catalog.session() as session:
            rows = session.scalars(
                select(ChannelMembership).join(Artifact).filter(
                    ChannelMembership.channel == channel,
                    ChannelMembership.state == MembershipState.APPROVED,
                    Artifact.state == ArtifactState.DOWNLOADED,
                    Artifact.removed_upstream.is_(False),
                ).order_by(Artifact.upstream, Artifact.subdir, Artifact.filename)
            ).all()

            for membership in rows:
                artifact = membership.artifact
                if not artifact.filename.endswith(suffixes):
                    continue
                if not self.context.store.has(artifact.sha256):
                    report.warnings.append(f"{artifact.key}: approved but its blob is missing; run 'mirror sync'")
                    continue
                by_name = files.setdefault(artifact.subdir, {})
                if artifact.filename in by_name:
                    report.warnings.append(
                        f"channel {channel}: {artifact.subdir}/{artifact.filename} comes from two upstreams; "
                        f"kept the first, skipped the one from {artifact.upstream}"
                    )
                    continue
                by_name[artifact.filename] = PublishedFile(record=artifact.record, sha256=artifact.sha256)
                subdirs.add(artifact.subdir)

            if "consistency" in self.config.channels[channel].checks:
                held = self._hold_inconsistent(channel, files, report)
                for membership in rows:
                    reason = held.get((membership.artifact.subdir, membership.artifact.filename))
                    if reason and membership.reason != reason:
                        membership.reason = reason
                        audit(session, "publish", "not_published", channel=channel, artifact_id=membership.artifact_id, reason=reason)

            result = publish_channel(
                self.config.channels_dir / channel,
                files,
                self.context.store.link,
                all_subdirs=sorted(subdirs),
                removal_grace_seconds=self.removal_grace_seconds,
            )

            now = utcnow()
            for membership in rows:
                if membership.published_at is None and membership.artifact.filename in files.get(membership.artifact.subdir, {}):
                    membership.published_at = now
                    audit(session, "publish", "published", channel=channel, artifact_id=membership.artifact_id)

        count = sum(len(by_name) for by_name in files.values())

        report.channels[channel] = count
        report.changed_files.extend(f"{channel}/{name}" for name in result.changed_files)
        logger.info("channel %s published: %d files, %d index files changed", channel, count, len(result.changed_files))
