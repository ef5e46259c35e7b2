"""Exception tree of the mirror.

MirrorError
 +-- ConfigError            a configuration or whitelist file is invalid
 +-- UpstreamError          an upstream channel could not be read
 |    +-- ShortReadError    a response ended before its announced length
 |    +-- HashMismatchError downloaded bytes do not match the upstream record
 +-- StoreError             the blob store could not write or find a blob
 +-- UnsafePathError        a path would leave the folder it must stay in
"""

from __future__ import annotations


class MirrorError(Exception):
    """Base class of every error the mirror raises on purpose."""


class ConfigError(MirrorError):
    """A configuration file is invalid; the message names file, line, key and fix."""


class UpstreamError(MirrorError):
    """An upstream request failed after its retries."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ShortReadError(UpstreamError):
    """The connection closed before the announced number of bytes arrived."""

    def __init__(self, url: str, expected: int, received: int):
        super().__init__(
            f"short read from {url}: expected {expected} bytes, received {received}",
            url=url,
        )
        self.expected = expected
        self.received = received


class HashMismatchError(UpstreamError):
    """A downloaded file does not match the size or hash in its upstream record."""

    def __init__(self, filename: str, field: str, expected: str, actual: str):
        super().__init__(
            f"{filename}: {field} mismatch, upstream record says {expected}, "
            f"downloaded file has {actual}; the file was discarded"
        )
        self.filename = filename
        self.field = field
        self.expected = expected
        self.actual = actual


class StoreError(MirrorError):
    """The blob store failed to write or read a blob."""


class UnsafePathError(MirrorError):
    """A path would resolve outside the folder it is confined to."""
