"""The short-lived sign-in cache."""

from __future__ import annotations

from mirror.auth.cache import AuthCache


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entry_expires():
    clock = FakeClock()
    cache: AuthCache[str] = AuthCache(60, clock=clock)
    key = cache.key("password", "carol", "secret")
    cache.put(key, "carol")

    assert cache.get(key) == "carol"
    clock.now = 60
    assert cache.get(key) is None


def test_key_hides_password_and_separates_parts():
    cache: AuthCache[str] = AuthCache(60)

    assert b"secret" not in cache.key("password", "carol", "secret")
    assert cache.key("ab", "c") != cache.key("a", "bc")


def test_zero_ttl_stores_nothing():
    cache: AuthCache[str] = AuthCache(0)
    cache.put(cache.key("x"), "value")

    assert len(cache) == 0


def test_bounded_and_discard_where():
    cache: AuthCache[int] = AuthCache(60, max_entries=2)
    for number in range(3):
        cache.put(cache.key(str(number)), number)
    cache.discard_where(lambda value: value == 2)

    assert len(cache) == 1
    assert cache.get(cache.key("1")) == 1
