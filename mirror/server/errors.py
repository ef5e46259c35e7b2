"""JSON error responses that never echo the request path.

Paths may carry credentials (a conda token in `/t/<token>/...`), so an
error body names only the kind of failure.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def not_found() -> web.Response:
    return json_error(404, "not found")


@web.middleware
async def json_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the router's 404 and 405 errors into short JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return not_found()
    except web.HTTPMethodNotAllowed as exc:
        return json_error(
            405, "method not allowed", headers={"Allow": exc.headers.get("Allow", "")}
        )
