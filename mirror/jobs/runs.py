"""Start and finish rows of the sync_runs table, so every run ends with an honest status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mirror.catalog.models import RunStatus, SyncRun, utcnow
from mirror.catalog.session import Catalog
from mirror.ops.logs import run_context

logger = logging.getLogger(__name__)


def start_run(catalog: Catalog, kind: str) -> int:
    with catalog.session() as session:
        run = SyncRun(kind=kind, status=RunStatus.RUNNING, counts={}, errors=[])
        session.add(run)
        session.flush()
        return run.id


def finish_run(catalog: Catalog, run_id: int, status: RunStatus, counts: dict[str, Any], errors: list[Any]) -> None:
    with catalog.session() as session:
        run = session.get(SyncRun, run_id)
        run.status = status
        run.finished_at = utcnow()
        run.counts = counts
        run.errors = errors[:500]


def close_abandoned_runs(catalog: Catalog) -> int:
    """Mark runs left 'running' by a killed process as interrupted; return how many."""
    with catalog.session() as session:
        abandoned = session.query(SyncRun).filter(SyncRun.status == RunStatus.RUNNING).all()
        for run in abandoned:
            run.status = RunStatus.INTERRUPTED
            run.finished_at = utcnow()
            run.errors = [*(run.errors or []), "the process ended before the run finished"]
        return len(abandoned)


@contextmanager
def recorded_run(
    catalog: Catalog,
    report: Any,
    *,
    counts: Callable[[], dict[str, Any]],
    errors: Callable[[], list[Any]],
    outcome: Callable[[], RunStatus] = lambda: RunStatus.SUCCESS,
) -> Iterator[None]:
    """Record the body as one run: interrupted on Ctrl-C or cancellation, failed on an error.

    `report` needs `run_id` and `status` attributes; `outcome` gives the
    status of a body that ends normally, such as PARTIAL after some errors.
    """
    try:
        with run_context(run_id=report.run_id, job=kind_of(report)):
            yield
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.status = RunStatus.INTERRUPTED
        raise
    except BaseException:
        report.status = RunStatus.FAILED
        raise
    else:
        report.status = outcome()
    finally:
        finish_run(catalog, report.run_id, report.status, counts(), errors())
        logger.info("%s run %d ended: %s %s", kind_of(report), report.run_id, report.status.value, counts())


def kind_of(report: Any) -> str:
    return type(report).__name__.removesuffix("Report").lower() or "job"
