"""Start and finish rows of the sync_runs table, so every run ends with an honest status."""

from __future__ import annotations

from typing import Any

from mirror.catalog.models import RunStatus, SyncRun, utcnow
from mirror.catalog.session import Catalog


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
