"""Validate: run each channel's checks on stored files and decide every pending membership.

A file runs the union of the checks that the channels selecting it
require. Results are stored per (check name, check version), so a rerun
does no work for checks that did not change. A check whose version
changed (new YARA rules, a new advisory import) runs again. A check that
ended in ERROR runs again too, because an error means it could not decide.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from mirror.catalog.models import (
    Artifact,
    ArtifactState,
    ChannelMembership,
    CheckOutcome,
    MembershipState,
    RunStatus,
    ValidationResult,
)
from mirror.config.schema import ALL_CHECKS
from mirror.jobs.context import MirrorContext, audit
from mirror.jobs.runs import recorded_run, start_run
from mirror.review.policy import AUTO_APPROVER, decide, file_checks, released_at
from mirror.validate.pipeline import Check, run_checks
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
CheckFactory = Callable[[MirrorContext, Callable[[CheckContext], str | None]], dict[str, Check]]


@dataclass
class ValidationReport:
    run_id: int
    status: RunStatus = RunStatus.RUNNING
    validated: int = 0
    approved: int = 0
    held: int = 0
    waiting: int = 0
    failed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "validated": self.validated, "approved": self.approved, "held": self.held,
            "waiting": self.waiting, "failed": len(self.failed),
        }


@dataclass
class _Work:
    artifact_id: int
    context: CheckContext
    checks: list[Check]
    done: set[tuple[str, str]]


class ValidationJob:
    def __init__(
        self,
        context: MirrorContext,
        *,
        checks: dict[str, Check] | None = None,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ):
        self.context = context
        self.config = context.config
        self._given_checks = checks
        self.workers = workers or context.config.validation.workers or max(1, os.cpu_count() or 1)
        self.progress = progress or (lambda _phase, _done, _total: None)
        self._quarantine_urls: dict[Path, str] = {}

    def run(self) -> ValidationReport:
        report = ValidationReport(run_id=start_run(self.context.catalog, "validate"))
        with recorded_run(self.context.catalog, report, counts=report.counts, errors=lambda: report.failed):
            self.checks = self._build_checks()
            work = self._pending_work()
            self._validate_all(work, report)
            self._decide_memberships(report)
        return report

    def _build_checks(self) -> dict[str, Check]:
        if self._given_checks is not None:
            return self._given_checks
        from mirror.validate.registry import build_checks

        return build_checks(self.context, self._quarantine_url)

    def _quarantine_url(self, context: CheckContext) -> str | None:
        return self._quarantine_urls.get(Path(context.path))

    # Running checks

    def _pending_work(self) -> list[_Work]:
        work = []
        with self.context.catalog.session() as session:
            artifacts = session.scalars(
                select(Artifact).filter(
                    Artifact.state == ArtifactState.DOWNLOADED,
                    Artifact.memberships.any(ChannelMembership.state == MembershipState.PENDING),
                )
            ).all()
            needs_install = []
            for artifact in artifacts:
                checks = self._checks_for(artifact)
                stored = self._current_results(artifact, checks)
                if any(r.outcome == CheckOutcome.FAIL for r in stored.values()):
                    continue  # the failure remains until the file or the check changes
                done = {key for key, r in stored.items() if r.outcome != CheckOutcome.ERROR}
                todo = [check for check in checks if (check.name, check.version) not in done]
                if not todo:
                    continue
                context = CheckContext(
                    path=self.context.store.path_for(artifact.sha256),
                    filename=artifact.filename,
                    subdir=artifact.subdir,
                    record=dict(artifact.record),
                )
                work.append(_Work(artifact.id, context, checks, done))
                if any(check.name == "install" for check in todo):
                    needs_install.append(artifact)
            if needs_install:
                self._prepare_quarantine(session, {a.upstream for a in needs_install})
        return work

    def _prepare_quarantine(self, session, upstreams: set[str]) -> None:
        """Lay out every downloaded file of these upstreams as a local channel for install tests."""
        from mirror.validate.quarantine import QuarantineFile, build_quarantine_channel

        for upstream in sorted(upstreams):
            artifacts = session.scalars(
                select(Artifact).filter(Artifact.upstream == upstream, Artifact.state == ArtifactState.DOWNLOADED)
            ).all()
            files = [
                QuarantineFile(a.subdir, a.filename, a.record, self.context.store.path_for(a.sha256))
                for a in artifacts
                if not a.removed_upstream
            ]
            root = build_quarantine_channel(self.config.data_dir / "quarantine" / upstream, files)
            for artifact in artifacts:
                self._quarantine_urls[self.context.store.path_for(artifact.sha256)] = root.as_uri()
            logger.info("quarantine channel for upstream %s: %d files in %s", upstream, len(files), root)

    def _validate_all(self, work: list[_Work], report: ValidationReport) -> None:
        total = len(work)
        self.progress("validate", 0, total)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="validate") as pool:
            futures = {pool.submit(run_checks, item.context, item.checks, done=item.done): item for item in work}
            for finished, future in enumerate(as_completed(futures), start=1):
                item = futures[future]
                self._store_results(item.artifact_id, future.result())
                report.validated += 1
                self.progress("validate", finished, total)
                logger.debug("validated %s/%s", item.context.subdir, item.context.filename)

    def _store_results(self, artifact_id: int, results: list[tuple[Check, CheckResult]]) -> None:
        with self.context.catalog.session() as session:
            for check, result in results:
                row = session.scalar(
                    select(ValidationResult).filter_by(
                        artifact_id=artifact_id, check_name=check.name, check_version=check.version
                    )
                )
                if row is None:
                    row = ValidationResult(artifact_id=artifact_id, check_name=check.name, check_version=check.version)
                    session.add(row)
                row.outcome = result.outcome
                row.summary = result.summary
                row.evidence = result.evidence

    # Decisions

    def _decide_memberships(self, report: ValidationReport) -> None:
        with self.context.catalog.session() as session:
            pending = session.scalars(
                select(ChannelMembership).join(Artifact).filter(
                    ChannelMembership.state == MembershipState.PENDING,
                    Artifact.state == ArtifactState.DOWNLOADED,
                )
            ).all()
            for membership in pending:
                channel = self.config.channels.get(membership.channel)
                if channel is None:
                    continue  # the channel was removed from mirror.yaml; nothing to publish to
                artifact = membership.artifact
                checks = [self.checks[name] for name in file_checks(channel) if name in self.checks]
                stored = self._current_results(artifact, checks)
                results = {name: _as_result(row) for (name, _), row in stored.items()}
                decision = decide(channel, results, released_at=released_at(artifact.record, artifact.first_seen))
                if decision is None:
                    continue
                self._apply(session, membership, decision, report)

    def _apply(self, session, membership, decision, report: ValidationReport) -> None:
        changed = (membership.state, membership.reason) != (decision.state, decision.reason)
        membership.state = decision.state
        membership.reason = decision.reason
        artifact = membership.artifact
        if decision.state == MembershipState.APPROVED:
            audit(session, AUTO_APPROVER, "approved", channel=membership.channel, artifact_id=artifact.id, reason=decision.reason)
            report.approved += 1
        elif decision.state == MembershipState.FAILED:
            audit(session, "validate", "failed", channel=membership.channel, artifact_id=artifact.id, reason=decision.reason)
            report.failed.append(f"{membership.channel}: {artifact.key}: {decision.reason}")
            logger.warning("%s kept out of channel %s: %s", artifact.key, membership.channel, decision.reason)
        elif decision.state == MembershipState.PASSED:
            audit(session, "validate", "held", channel=membership.channel, artifact_id=artifact.id, reason=decision.reason)
            report.held += 1
        elif changed:
            audit(session, "validate", "waiting", channel=membership.channel, artifact_id=artifact.id, reason=decision.reason)
            report.waiting += 1
        else:
            report.waiting += 1

    # Helpers

    def _checks_for(self, artifact: Artifact) -> list[Check]:
        """Return the union of the checks required by the artifact's pending channels, in pipeline order."""
        wanted: set[str] = set()
        for membership in artifact.memberships:
            channel = self.config.channels.get(membership.channel)
            if channel is not None and membership.state == MembershipState.PENDING:
                wanted.update(file_checks(channel))
        return [self.checks[name] for name in ALL_CHECKS if name in wanted and name in self.checks]

    @staticmethod
    def _current_results(artifact: Artifact, checks: list[Check]) -> dict[tuple[str, str], ValidationResult]:
        wanted = {(check.name, check.version) for check in checks}
        return {
            (row.check_name, row.check_version): row
            for row in artifact.results
            if (row.check_name, row.check_version) in wanted
        }


def _as_result(row: ValidationResult) -> CheckResult:
    return CheckResult(outcome=CheckOutcome(row.outcome), summary=row.summary, evidence=row.evidence or {})
