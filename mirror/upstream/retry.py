"""Retry policy for upstream requests: which failures retry, how long to wait, when to stop.

A request attempt raises `TransientError` for a failure that another attempt
may fix (timeout, connection error, short read, HTTP 408, 429 and 5xx) and a
plain `UpstreamError` for one that it cannot (other 4xx). `call_with_retries`
sleeps between attempts with exponential backoff and jitter, or for the
server's Retry-After, and raises the last error once the attempts run out.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from mirror.config.schema import UpstreamConfig
from mirror.errors import UpstreamError

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


class TransientError(Exception):
    """An attempt failed in a way that another attempt may fix.

    `error` is what the caller sees when no attempt is left, and `retry_after`
    the wait in seconds that the server requested, if it sent one.
    """

    def __init__(self, error: UpstreamError, retry_after: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    backoff_seconds: float
    max_backoff_seconds: float

    @classmethod
    def from_config(cls, config: UpstreamConfig) -> RetryPolicy:
        return cls(config.retries, config.backoff_seconds, config.max_backoff_seconds)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait after failed attempt number `attempt` (0 for the first).

        The wait is a random value between half and all of
        `backoff_seconds * 2**attempt`, so that many workers that failed
        together do not retry together. A Retry-After value replaces it.
        Both are capped at `max_backoff_seconds`.
        """
        if retry_after is not None:
            return min(retry_after, self.max_backoff_seconds)

        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def call_with_retries(
    operation: Callable[[], Awaitable[T]], policy: RetryPolicy, description: str
) -> T:
    """Await `operation()` until it succeeds, raises a final error, or the retries run out.

    `description` names the request in log lines and must hold no secret.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except TransientError as failure:
            if attempt >= policy.retries:
                raise failure.error from None

            delay = policy.delay(attempt, failure.retry_after)
            attempt += 1
            logger.warning(
                "%s failed: %s; retry %d of %d in %.2f s",
                description,
                failure.error,
                attempt,
                policy.retries,
                delay,
            )
            await asyncio.sleep(delay)


def check_status(status: int, url: str, headers: Mapping[str, str]) -> None:
    """Raise for an HTTP status that is not a success; `url` must already be redacted."""
    if 200 <= status < 300:
        return

    if status in RETRYABLE_CLIENT_STATUSES or status >= 500:
        error = UpstreamError(f"{url} returned HTTP {status}", url=url, status=status)
        raise TransientError(error, retry_after_seconds(headers.get("Retry-After")))

    raise UpstreamError(
        f"{url} returned HTTP {status}; check the upstream URL, subdir and credentials",
        url=url,
        status=status,
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header, either delay seconds or an HTTP date, into seconds.

    Returns None for a missing or invalid value, and 0 for a date in the past.
    """
    if value is None:
        return None

    value = value.strip()
    if value.isdigit():
        return float(value)

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
