"""Log records carry the run id and job; the JSON formatter writes one object per line."""

from __future__ import annotations

import json
import logging

from mirror.ops.logs import JsonFormatter, PlainFormatter, RunContextFilter, run_context


def record(message: str = "downloaded %s", *args, **extra) -> logging.LogRecord:
    item = logging.LogRecord("mirror.jobs.sync", logging.INFO, __file__, 1, message, args or ("a.conda",), None)
    for key, value in extra.items():
        setattr(item, key, value)
    return item


def test_json_has_run_id_and_extras():
    item = record(filename="a-1.0-0.conda")
    with run_context(run_id=42, job="sync:up"):
        RunContextFilter().filter(item)
    document = json.loads(JsonFormatter().format(item))
    assert document["message"] == "downloaded a.conda"
    assert document["run_id"] == 42
    assert document["job"] == "sync:up"
    assert document["filename"] == "a-1.0-0.conda"
    assert document["level"] == "INFO"


def test_context_resets_after_block():
    with run_context(run_id=1):
        pass
    item = record()
    RunContextFilter().filter(item)
    assert item.run_id is None


def test_plain_shows_context():
    item = record()
    with run_context(run_id=5, job="sync:up"):
        RunContextFilter().filter(item)
    assert "mirror.jobs.sync [sync:up run 5]: downloaded a.conda" in PlainFormatter().format(item)


def test_json_exception_text():
    try:
        raise ValueError("bad value")
    except ValueError:
        import sys

        item = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RunContextFilter().filter(item)
    assert "ValueError: bad value" in json.loads(JsonFormatter().format(item))["exception"]
