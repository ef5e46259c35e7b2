"""Validate: run the check pipeline on stored files and decide each channel membership.

Results are stored per (check name, check version), so a rerun does no
work for checks that did not change; a check that ended in ERROR runs
again, because an error says the check could not decide.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

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
from mirror.jobs.context import MirrorContext, audit
from mirror.jobs.runs import finish_run, start_run
from mirror.review.policy import AUTO_APPROVER, decide
from mirror.validate.pipeline import Check, default_checks, run_checks
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ValidationReport:
    run_id: int
    status: RunStatus = RunStatus.RUNNING
    validated: int = 0
    approved: int = 0
    held: int = 0
    failed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"validated": self.validated, "approved": self.approved, "held": self.held, "failed": len(self.failed)}


class ValidationJob:
    def __init__(
        self,
        context: MirrorContext,
        *,
        checks: list[Check] | None = None,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ):
        self.context = context
        self.checks = checks if checks is not None else default_checks()
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.progress = progress or (lambda _phase, _done, _total: None)

    def run(self) -> ValidationReport:
        report = ValidationReport(run_id=start_run(self.context.catalog, "validate"))
        try:
            work = self._pending_artifacts()
            self._validate_all(work, report)
            self._decide_memberships(report)
        except BaseException as exc:
            report.status = RunStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
            raise
        else:
            report.status = RunStatus.SUCCESS
            return report
        finally:
            finish_run(self.context.catalog, report.run_id, report.status, report.counts(), report.failed)
            logger.info("validation run %d ended: %s %s", report.run_id, report.status.value, report.counts())

    def _pending_artifacts(self) -> list[tuple[int, CheckContext, set[tuple[str, str]]]]:
        """Return downloaded artifacts with a pending membership, and the checks already done."""
        work = []
        with self.context.catalog.session() as session:
            artifacts = session.scalars(
                select(Artifact).filter(
                    Artifact.state == ArtifactState.DOWNLOADED,
                    Artifact.memberships.any(ChannelMembership.state == MembershipState.PENDING),
                )
            )
            for artifact in artifacts:
                stored = self._current_results(artifact)
                if any(r.outcome == CheckOutcome.FAIL for r in stored.values()):
                    continue  # the failure stands until the file or the check changes
                done = {key for key, r in stored.items() if r.outcome != CheckOutcome.ERROR}
                if len(done) == len(self.checks):
                    continue
                context = CheckContext(
                    path=self.context.store.path_for(artifact.sha256),
                    filename=artifact.filename,
                    subdir=artifact.subdir,
                    record=dict(artifact.record),
                )
                work.append((artifact.id, context, done))
        return work

    def _validate_all(self, work, report: ValidationReport) -> None:
        total = len(work)
        self.progress("validate", 0, total)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="validate") as pool:
            futures = {
                pool.submit(run_checks, context, self.checks, done=done): (artifact_id, context)
                for artifact_id, context, done in work
            }
            for finished, future in enumerate(as_completed(futures), start=1):
                artifact_id, context = futures[future]
                self._store_results(artifact_id, future.result())
                report.validated += 1
                self.progress("validate", finished, total)
                logger.debug("validated %s/%s", context.subdir, context.filename)

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

    def _decide_memberships(self, report: ValidationReport) -> None:
        with self.context.catalog.session() as session:
            pending = session.scalars(
                select(ChannelMembership).join(Artifact).filter(
                    ChannelMembership.state == MembershipState.PENDING,
                    Artifact.state == ArtifactState.DOWNLOADED,
                )
            )
            for membership in pending:
                stored = self._current_results(membership.artifact)
                if not self._complete(stored):
                    continue
                channel = self.context.config.channels.get(membership.channel)
                if channel is None:
                    continue  # the channel was removed from mirror.yaml; nothing to publish to
                decision = decide(channel, [(name, _as_result(row)) for (name, _), row in stored.items()])
                self._apply(session, membership, decision, report)

    def _apply(self, session, membership, decision, report) -> None:
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
        else:
            audit(session, "validate", "held", channel=membership.channel, artifact_id=artifact.id, reason=decision.reason)
            report.held += 1

    def _current_results(self, artifact: Artifact) -> dict[tuple[str, str], ValidationResult]:
        wanted = {(check.name, check.version) for check in self.checks}
        return {
            (row.check_name, row.check_version): row
            for row in artifact.results
            if (row.check_name, row.check_version) in wanted
        }

    def _complete(self, stored: dict) -> bool:
        # A failed gate leaves later checks unrun on purpose, so one FAIL is enough to decide.
        return len(stored) == len(self.checks) or any(row.outcome == CheckOutcome.FAIL for row in stored.values())


def _as_result(row: ValidationResult) -> CheckResult:
    return CheckResult(outcome=CheckOutcome(row.outcome), summary=row.summary, evidence=row.evidence or {})
