"""Tests for mirror.upstream.retry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mirror.errors import UpstreamError
from mirror.upstream.retry import RetryPolicy, TransientError, check_status, retry_after_seconds

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_retry_after_seconds_value() -> None:
    assert retry_after_seconds("7") == 7.0


def test_retry_after_http_date() -> None:
    assert retry_after_seconds("Wed, 01 May 2024 12:00:30 GMT", now=NOW) == 30.0


def test_retry_after_past_date_is_zero() -> None:
    assert retry_after_seconds("Wed, 01 May 2024 11:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_retry_after_invalid(value: str | None) -> None:
    assert retry_after_seconds(value) is None


def test_delay_uses_retry_after_capped() -> None:
    policy = RetryPolicy(retries=3, backoff_seconds=1.0, max_backoff_seconds=10.0)

    assert policy.delay(0, retry_after=4.0) == 4.0
    assert policy.delay(0, retry_after=600.0) == 10.0


def test_delay_backoff_grows_with_jitter() -> None:
    policy = RetryPolicy(retries=5, backoff_seconds=1.0, max_backoff_seconds=5.0)

    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (6, 5.0)]:
        delay = policy.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_check_status_retryable(status: int) -> None:
    with pytest.raises(TransientError) as caught:
        check_status(status, "https://h/x", {"Retry-After": "3"})

    assert caught.value.error.status == status
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_check_status_final(status: int) -> None:
    with pytest.raises(UpstreamError) as caught:
        check_status(status, "https://h/x", {})

    assert caught.value.status == status
    assert f"HTTP {status}" in str(caught.value)
