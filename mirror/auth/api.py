"""JSON API of the signed-in principal: `/api/whoami` and `/api/tokens`.

Each route responds with and without a trailing slash, without a
redirect, because a redirect would drop the Authorization header in
some clients.

* `GET /api/whoami`: the principal, its roles and readable channels;
* `POST /api/tokens` with `{"name", "channels", "expires_days"}`: a new
  token, shown once in the response;
* `GET /api/tokens`: the caller's tokens (every token for an admin);
* `DELETE /api/tokens/{id}`: revoke one of them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial
from typing import Any

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.auth.authenticator import Principal
from mirror.auth.middleware import AUTHENTICATOR_KEY, PRINCIPAL_KEY
from mirror.auth.tokens import TokenError, TokenNotFoundError
from mirror.server.errors import json_error
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)


def add_auth_routes(app: web.Application) -> None:
    for suffix in ("", "/"):
        app.router.add_get("/api/whoami" + suffix, whoami)
        app.router.add_get("/api/tokens" + suffix, list_tokens)
        app.router.add_post("/api/tokens" + suffix, create_token)
        app.router.add_delete("/api/tokens/{token_id}" + suffix, revoke_token)


@requires(Access.AUTHENTICATED)
async def whoami(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    channels = request.app[CONFIG_KEY].channels
    return web.json_response(
        {
            "user": principal.name,
            "source": principal.source,
            "token_id": principal.token_id,
            "admin": principal.roles.admin,
            "reviewer": principal.roles.is_reviewer,
            "channels": principal.roles.readable(channels),
        }
    )


@requires(Access.PASSWORD)
async def create_token(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    config = request.app[CONFIG_KEY]
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "the body must be JSON: {\"name\": ..., \"channels\": [...], \"expires_days\": N}")
    if not isinstance(body, dict):
        return json_error(400, "the body must be a JSON object with name, channels and expires_days")

    problem = _check_request(body, config.channels, config.auth.tokens.max_expiry_days)
    if problem is not None:
        return json_error(400, problem)
    channels = list(body["channels"])
    refused = [name for name in channels if not principal.roles.can_read(name)]
    if refused:
        return json_error(403, "your account may not read every channel named in 'channels'")

    days = body.get("expires_days", config.auth.tokens.default_expiry_days)
    store = request.app[AUTHENTICATOR_KEY].tokens
    try:
        issued = await _in_thread(
            partial(store.create, name=body["name"], owner=principal.name, owner_source=principal.source,
                    channels=channels, expires_in=timedelta(days=days))
        )
    except TokenError as exc:
        return json_error(400, str(exc))
    return web.json_response({**issued.row.describe(), "token": issued.token}, status=201)


def _check_request(body: dict[str, Any], channels: dict, max_days: int) -> str | None:
    """Return what is wrong with a token request, or None."""
    unknown_keys = set(body) - {"name", "channels", "expires_days"}
    if unknown_keys:
        return "unknown key(s) in the body; send name, channels and expires_days"
    if not isinstance(body.get("name"), str):
        return "'name' must be a string that says what the token is for"
    requested = body.get("channels")
    if not isinstance(requested, list) or not requested or not all(isinstance(c, str) for c in requested):
        return "'channels' must be a non-empty list of channel names"
    if any(name not in channels for name in requested):
        return f"'channels' names an unknown channel; known channels: {', '.join(sorted(channels))}"
    days = body.get("expires_days", 1)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max_days:
        return f"'expires_days' must be a whole number of days from 1 to {max_days}"
    return None


@requires(Access.PASSWORD)
async def list_tokens(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    store = request.app[AUTHENTICATOR_KEY].tokens
    rows = await _in_thread(partial(store.list, _owner_filter(principal)))
    return web.json_response({"tokens": [row.describe() for row in rows]})


@requires(Access.PASSWORD)
async def revoke_token(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    authenticator = request.app[AUTHENTICATOR_KEY]
    try:
        token_id = int(request.match_info["token_id"])
    except ValueError:
        return json_error(404, "no such token")
    try:
        row = await _in_thread(
            partial(authenticator.tokens.revoke, token_id, actor=principal.name, owner=_owner_filter(principal))
        )
    except TokenNotFoundError:
        return json_error(404, "no such token")
    authenticator.forget_token(token_id)
    return web.json_response(row.describe())


def _owner_filter(principal: Principal) -> str | None:
    # Admins see and revoke every token; other users only their own.
    return None if principal.roles.admin else principal.name


async def _in_thread(function):
    return await asyncio.get_running_loop().run_in_executor(None, function)
