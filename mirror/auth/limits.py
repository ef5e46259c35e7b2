"""Sliding-window limits on failed sign-in attempts, per user name and per client address.

A user name or address with `max_failures` failures inside the last
`window_seconds` is locked until the oldest of them leaves the window.
A success clears the user name's failures but not the address's, so one
valid account cannot be used to reset the limit of an address that is
guessing other accounts' passwords.

NOTE: the counters live in one process. Several server replicas each
allow the configured number of failures.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from mirror.config.auth import LimitsConfig

# Bounds the memory an attacker can make the limiter use with new names and addresses.
MAX_TRACKED_KEYS = 100_000


class FailureWindow:
    """Failure times per key within a sliding window."""

    def __init__(self, max_failures: int, window_seconds: float, clock: Callable[[], float]):
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Return the seconds until `key` may try again, or None when it is not locked."""
        times = self._recent(key)
        if times is None or len(times) < self.max_failures:
            return None
        return times[-self.max_failures] + self.window - self._clock()

    def record(self, key: str) -> None:
        if key not in self._failures and len(self._failures) >= MAX_TRACKED_KEYS:
            self._prune()
        times = self._failures.setdefault(key, deque())
        times.append(self._clock())
        while len(times) > self.max_failures:
            times.popleft()

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        cutoff = self._clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _prune(self) -> None:
        for key in list(self._failures):
            self._recent(key)
        # Still full after dropping expired entries: forget the oldest keys.
        while len(self._failures) >= MAX_TRACKED_KEYS:
            del self._failures[next(iter(self._failures))]


class AttemptLimiter:
    """Limits on failed attempts per user name and per address."""

    def __init__(self, config: LimitsConfig, *, clock: Callable[[], float] = time.monotonic):
        self._users = FailureWindow(config.max_failures_per_user, config.window_seconds, clock)
        self._addresses = FailureWindow(config.max_failures_per_address, config.window_seconds, clock)

    def retry_after(self, address: str, username: str | None) -> int | None:
        """Return whole seconds to wait when the address or user name is locked, else None."""
        waits = [self._addresses.retry_after(address)]
        if username is not None:
            waits.append(self._users.retry_after(_user_key(username)))
        locked = [wait for wait in waits if wait is not None]
        if not locked:
            return None
        return max(1, math.ceil(max(locked)))

    def record_failure(self, address: str, username: str | None) -> None:
        self._addresses.record(address)
        if username is not None:
            self._users.record(_user_key(username))

    def record_success(self, username: str) -> None:
        self._users.clear(_user_key(username))


def _user_key(username: str) -> str:
    # Directories compare user names case-insensitively, so `Alice` and `alice` share a limit.
    return username.casefold()
