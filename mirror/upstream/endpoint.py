"""One upstream channel as seen by a request: its URLs, credentials and retry policy.

Every URL leaves this module in two forms: the request URL, which carries the
token and goes only to aiohttp, and the redacted URL, which is the only form
that may appear in logs, errors and return values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from mirror.errors import ShortReadError, UpstreamError
from mirror.upstream.redact import redact_text, redact_url
from mirror.upstream.retry import RetryPolicy, TransientError
from mirror.upstream.urls import file_url, insert_token

CHUNK_SIZE = 256 * 1024

# Errors aiohttp raises while connecting or reading a body; all of them may
# pass on another attempt. TimeoutError covers aiohttp's own timeouts too.
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    policy: RetryPolicy
    token: str | None = field(default=None, repr=False)
    proxy: str | None = field(default=None, repr=False)

    def public_url(self, subdir: str, filename: str) -> str:
        """Return the file's URL without the token (it may still hold a userinfo)."""
        return file_url(self.base_url, subdir, filename)

    def request_url(self, public_url: str) -> str:
        return insert_token(public_url, self.token)

    def scrub(self, text: str) -> str:
        """Mask the token, passwords and token segments in a message from a library."""
        secrets = [self.token, quote(self.token, safe="")] if self.token else []
        return redact_text(text, secrets)

    def network_failure(self, url: str, exc: BaseException) -> TransientError:
        """Wrap a connection error or timeout raised before the body started."""
        detail = self.scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        return TransientError(
            UpstreamError(f"request to {redact_url(url)} failed: {detail}", url=redact_url(url))
        )


async def stream_body(
    response: aiohttp.ClientResponse,
    sink: Callable[[bytes], None],
    *,
    endpoint: Endpoint,
    url: str,
    offset: int = 0,
    expected_total: int | None = None,
) -> int:
    """Pass the response body to `sink` in chunks and return the number of body bytes.

    `offset` bytes were already received in earlier attempts and count
    towards `expected_total`, the full file size when known. A body that ends
    before its Content-Length, a chunked body without its last chunk, and a
    connection that drops or times out all raise a `TransientError`. Errors
    raised by `sink` pass through unchanged.
    """
    announced = announced_length(response)
    if expected_total is None and announced is not None:
        expected_total = offset + announced

    received = 0
    try:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            sink(chunk)
            received += len(chunk)
    except NETWORK_ERRORS as exc:
        raise short_read(endpoint, url, expected_total, offset + received, exc) from None

    if announced is not None and received < announced:
        raise short_read(endpoint, url, expected_total, offset + received, None)
    return received


def short_read(
    endpoint: Endpoint, url: str, expected: int | None, received: int, cause: BaseException | None
) -> TransientError:
    safe_url = redact_url(url)
    if expected is not None:
        return TransientError(ShortReadError(safe_url, expected, received))

    detail = endpoint.scrub(f"{type(cause).__name__}: {cause}") if cause else "connection closed"
    message = f"body from {safe_url} ended early after {received} bytes ({detail})"
    return TransientError(UpstreamError(message, url=safe_url))


def announced_length(response: aiohttp.ClientResponse) -> int | None:
    """Return Content-Length when it counts the body bytes that aiohttp yields.

    With a Content-Encoding, Content-Length counts encoded bytes while the
    body arrives decoded, so the two cannot be compared and None is returned.
    """
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    return response.content_length
