"""Sliding-window limits on failed attempts."""

from __future__ import annotations

from mirror.auth.limits import AttemptLimiter
from mirror.config.auth import LimitsConfig


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_user_locked_after_max_failures():
    clock = FakeClock()
    limiter = AttemptLimiter(LimitsConfig(max_failures_per_user=3, window_seconds=60), clock=clock)
    for _ in range(3):
        assert limiter.retry_after("127.0.0.3", "Eve") is None
        limiter.record_failure("127.0.0.1", "Eve")
        clock.now += 1

    assert limiter.retry_after("127.0.0.2", "eve") == 57
    clock.now += 57
    assert limiter.retry_after("127.0.0.2", "eve") is None


def test_success_clears_user_not_address():
    clock = FakeClock()
    limiter = AttemptLimiter(
        LimitsConfig(max_failures_per_user=2, max_failures_per_address=2, window_seconds=60), clock=clock
    )
    limiter.record_failure("127.0.0.1", "eve")
    limiter.record_failure("127.0.0.1", "eve")
    limiter.record_success("eve")

    assert limiter.retry_after("127.0.0.9", "eve") is None
    assert limiter.retry_after("127.0.0.1", "someone") == 60


def test_token_attempts_count_per_address():
    limiter = AttemptLimiter(LimitsConfig(max_failures_per_address=1), clock=FakeClock())
    limiter.record_failure("127.0.0.1", None)

    assert limiter.retry_after("127.0.0.1", None) == 300
    assert limiter.retry_after("127.0.0.2", None) is None
