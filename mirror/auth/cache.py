"""A short-lived cache of successful sign-ins, so a solve costs one directory round trip.

Keys are HMAC-SHA256 digests under a random key made at start-up, so the
cache never contains a password, and a memory dump does not give hashes
that could be tested offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class AuthCache(Generic[Value]):
    """Map secret-derived keys to values for `ttl_seconds`, keeping at most `max_entries`."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Value]] = OrderedDict()

    def key(self, *parts: str) -> bytes:
        """Return the cache key of `parts`; a NUL separator keeps ('ab', 'c') apart from ('a', 'bc')."""
        message = "\x00".join(parts).encode("utf-8", errors="surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, key: bytes) -> Value | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        return value

    def put(self, key: bytes, value: Value) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[Value], bool]) -> None:
        """Drop every entry whose value matches `predicate`."""
        for key in [key for key, (_, value) in self._entries.items() if predicate(value)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
