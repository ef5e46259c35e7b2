"""Run ids in log records, and a JSON formatter for log collectors.

Jobs set `RUN_ID` (the `sync_runs.id` of the run in progress) and the
service sets `JOB` (such as `sync:conda-forge`). `RunContextFilter` copies
both onto every record, where the plain and the JSON formats print them.
Context variables follow asyncio tasks and `asyncio.to_thread`, but not
work handed to a ThreadPoolExecutor directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

RUN_ID: ContextVar[int | None] = ContextVar("mirror_run_id", default=None)
JOB: ContextVar[str | None] = ContextVar("mirror_job", default=None)

# Keys passed with `extra=` that the JSON output carries as fields of their own.
EXTRA_KEYS = ("upstream", "channel", "subdir", "filename", "package", "sha256", "artifact_id", "request_id")


@contextmanager
def run_context(run_id: int | None = None, job: str | None = None) -> Iterator[None]:
    """Set the run id and job name of the log records written inside the block."""
    run_token = RUN_ID.set(run_id) if run_id is not None else None
    job_token = JOB.set(job) if job is not None else None
    try:
        yield
    finally:
        if job_token is not None:
            JOB.reset(job_token)
        if run_token is not None:
            RUN_ID.reset(run_token)


class RunContextFilter(logging.Filter):
    """Add `run_id` and `job` attributes (possibly None) to every record; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = RUN_ID.get()
        if getattr(record, "job", None) is None:
            record.job = JOB.get()
        return True


class PlainFormatter(logging.Formatter):
    """The usual one-line format, with `[job run N]` after the logger name when they are set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if getattr(record, "job", None):
            parts.append(str(record.job))
        if getattr(record, "run_id", None) is not None:
            parts.append(f"run {record.run_id}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, run_id, job and extras."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "job": getattr(record, "job", None),
        }
        for key in EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)
