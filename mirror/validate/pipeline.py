"""The ordered pipeline of checks that every package file passes through.

A check is any object with a stable `name`, a `version` and a `run`
method (the `Check` protocol). `run_checks` runs a list of them on one
file, skips those whose `(name, version)` already has a stored result,
and turns a check that raises into an ERROR result, so one broken check
or hostile file never stops a batch.

Gates: a check may set the class attribute `gate = True`. When a gate
check does not pass (FAIL or ERROR), the later checks are not run for
that file. The integrity check is a gate. Once the stored bytes differ
from the upstream record, archive or metadata results would describe
the wrong file. Results are cached per check version, so such results
would stay attached to the artifact after a fresh download. Skipped
checks return no result, so they run on the next attempt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from typing import Protocol

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks import ArchiveCheck, IntegrityCheck, MetadataCheck
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.shared_scan import SharedScan, is_content_check

logger = logging.getLogger(__name__)

# FAIL ranks above ERROR because a FAIL is a finding about the package,
# while an ERROR only means that a check could not decide.
_SEVERITY = {
    CheckOutcome.PASS: 0,
    CheckOutcome.WARN: 1,
    CheckOutcome.ERROR: 2,
    CheckOutcome.FAIL: 3,
}


class Check(Protocol):
    """One validation step.

    `name` is stable and is also the check's configuration key. Bump
    `version` whenever the check's logic changes, because stored results
    are reused per `(name, version)`. `run` reads the file through
    `context.path` and must not modify it. A check may also define
    `gate: bool` (see the module docstring). A missing `gate` counts as
    False. A check that also has `begin` and `limits` (the
    `shared_scan.ContentCheck` protocol) shares the pass over the file.
    """

    name: str
    version: str

    def run(self, context: CheckContext) -> CheckResult: ...


def default_checks() -> list[Check]:
    """Build the built-in checks in the order they run: integrity, archive, metadata."""
    return [IntegrityCheck(), ArchiveCheck(), MetadataCheck()]


def run_checks(
    context: CheckContext,
    checks: Iterable[Check],
    *,
    done: Collection[tuple[str, str]] = (),
) -> list[tuple[Check, CheckResult]]:
    """Run each check whose `(name, version)` is not in `done`, in order.

    Returns the checks that ran with their results; checks in `done` and
    checks after a failed gate are left out. A gate check listed in
    `done` counts as passed, so the caller must leave a failed gate out
    of `done` (or stop validating that file) to keep later checks from
    running on bytes the gate rejected.
    """
    due = _due_checks(context, checks, done)
    shared: dict[int, Callable[[], CheckResult]] = {}
    results: list[tuple[Check, CheckResult]] = []
    for position, check in enumerate(due):
        if position not in shared and is_content_check(check):
            shared.update(_scan_together(context, due, position))
        run = shared.pop(position, None) or partial(check.run, context)

        result = _run_one(check, context, run)
        results.append((check, result))

        if _is_gate(check) and result.outcome in (CheckOutcome.FAIL, CheckOutcome.ERROR):
            logger.info(
                "%s: gate check %s ended with %s, later checks skipped",
                context.filename,
                check.name,
                result.outcome.value,
            )
            break
    return results


def verdict(results: Iterable[CheckResult]) -> CheckOutcome:
    """Return the worst outcome of `results`: FAIL, then ERROR, then WARN, then PASS.

    Raises ValueError for an empty iterable, because a file that no check
    ran on has not passed anything.
    """
    outcomes = [result.outcome for result in results]
    if not outcomes:
        raise ValueError("verdict needs at least one check result; run the checks first")
    return max(outcomes, key=_SEVERITY.__getitem__)


def _due_checks(context: CheckContext, checks: Iterable[Check], done: Collection[tuple[str, str]]) -> list[Check]:
    due = []
    for check in checks:
        if (check.name, check.version) in done:
            logger.debug("%s: check %s %s already done", context.filename, check.name, check.version)
        else:
            due.append(check)
    return due


def _scan_together(context: CheckContext, due: Sequence[Check], start: int) -> dict[int, Callable[[], CheckResult]]:
    """Run the content checks from `due[start]` up to the next gate in one pass.

    Returns, for each of their positions in `due`, a function that returns
    the check's result or raises the check's exception. A gate that is a
    content check ends the group after itself, and one that is not ends
    it before itself, so no check after a gate reads the file before the
    gate has passed.
    """
    positions = []
    for position in range(start, len(due)):
        check = due[position]
        if is_content_check(check):
            positions.append(position)
        if _is_gate(check):
            break

    scan = SharedScan(context, [due[position] for position in positions])
    # The broad except keeps the pipeline's contract if the pass itself
    # fails: each check in the group then ends as an ERROR.
    try:
        scan.run()
    except Exception as exc:
        logger.exception("%s: shared pass over the package failed", context.filename)
        failure = exc
        return {position: partial(_raise, failure) for position in positions}
    return {position: partial(scan.result, index) for index, position in enumerate(positions)}


def _raise(error: Exception) -> CheckResult:
    raise error


def _run_one(check: Check, context: CheckContext, run: Callable[[], CheckResult]) -> CheckResult:
    # The broad except is the pipeline's contract: any exception inside a
    # check becomes an ERROR result for that file instead of ending the batch.
    try:
        result = run()
    except Exception as exc:
        logger.exception("%s: check %s %s raised", context.filename, check.name, check.version)
        return CheckResult(
            outcome=CheckOutcome.ERROR,
            summary=f"check {check.name} raised {type(exc).__name__}: {exc}",
            evidence={"exception": type(exc).__name__, "message": str(exc)},
        )

    problem = _describe_invalid_result(result)
    if problem is not None:
        logger.error("%s: check %s %s %s", context.filename, check.name, check.version, problem)
        return CheckResult(
            outcome=CheckOutcome.ERROR,
            summary=f"check {check.name} {problem}",
            evidence={"problem": problem},
        )

    logger.debug("%s: check %s %s: %s", context.filename, check.name, check.version, result.outcome.value)
    return result


def _describe_invalid_result(result: object) -> str | None:
    # The caller stores evidence in a JSON column, so a result that cannot be
    # stored is caught here, where the check's name is still known.
    if not isinstance(result, CheckResult):
        return f"returned {type(result).__name__} instead of a CheckResult"
    if not isinstance(result.outcome, CheckOutcome):
        return f"returned outcome {result.outcome!r}, which is not a CheckOutcome"
    try:
        json.dumps(result.evidence)
    except (TypeError, ValueError) as exc:
        return f"returned evidence that is not JSON-serialisable: {exc}"
    return None


def _is_gate(check: Check) -> bool:
    return bool(getattr(check, "gate", False))
