"""Access log lines written through `logging`, without query strings or tokens."""

from __future__ import annotations

import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

access_logger = logging.getLogger("mirror.server.access")

# conda sends its token as a path prefix, `/t/<token>/<channel>/...`.
_TOKEN_PREFIX = re.compile(r"^/t/[^/]*")


def loggable_path(request: BaseRequest) -> str:
    """Return the request path as sent, without the query string and with any token masked."""
    return _TOKEN_PREFIX.sub("/t/<redacted>", request.rel_url.raw_path)


def body_bytes(request: BaseRequest, response: StreamResponse) -> int:
    """Return the body size announced in Content-Length, or 0 when no body was sent.

    `response.body_length` misses files sent with sendfile, so the announced
    length is logged. NOTE: a client that disconnects early received fewer bytes.
    """
    if request.method == "HEAD":
        return 0
    return response.content_length or 0


class ChannelAccessLogger(AbstractAccessLogger):
    """Log method, path, status, body bytes and duration of each request at INFO."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %d bytes %.1f ms",
            request.method,
            loggable_path(request),
            response.status,
            body_bytes(request, response),
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
