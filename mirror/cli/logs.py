"""Logging set-up for the command line; library modules only fetch named loggers."""

from __future__ import annotations

import logging
import os
import sys

from mirror.ops.logs import JsonFormatter, PlainFormatter, RunContextFilter

LOG_FORMATS = ("plain", "json")
LOG_FORMAT_ENV = "MIRROR_LOG_FORMAT"


def configure_logging(verbosity: int, log_format: str | None = None) -> None:
    """Send log records to stderr, as plain lines or JSON objects.

    `log_format` None takes $MIRROR_LOG_FORMAT, else plain. Both formats
    carry the run id and job name that jobs set (see mirror.ops.logs).
    """
    log_format = log_format or os.environ.get(LOG_FORMAT_ENV) or "plain"
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of: {', '.join(LOG_FORMATS)}")

    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays at warning unless the user asked for debug output.
    for noisy in ("alembic", "aiohttp.access", "asyncio", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 2 else logging.DEBUG)
