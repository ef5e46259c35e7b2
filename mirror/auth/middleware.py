"""aiohttp middleware that authenticates and authorises every request.

Responses, each a short JSON body that never repeats a credential:

* 401 with `WWW-Authenticate: Basic realm="..."` when credentials are
  missing, malformed or wrong;
* 403 when the principal's roles do not allow the route;
* 429 with `Retry-After` while the address or user name is locked after
  too many failures;
* 503 with `Retry-After` when the directory cannot be reached.

Responses to signed-in principals get `Cache-Control: private`, so a
shared cache never hands one user's files to another.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from mirror.auth.access import Access, access_of
from mirror.auth.authenticator import (
    ANONYMOUS,
    AuthenticationError,
    Authenticator,
    Principal,
    TooManyAttemptsError,
)
from mirror.auth.credentials import CredentialsError, parse_credentials
from mirror.auth.ldap import DirectoryUnavailableError
from mirror.catalog.session import Catalog
from mirror.server.errors import json_error
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)

AUTHENTICATOR_KEY = web.AppKey("authenticator", Authenticator)
CATALOG_KEY = web.AppKey("catalog", Catalog)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
# Set by the dashboard: returns the principal of a session cookie, or None.
SessionResolver = Callable[[web.Request], Awaitable[Principal | None]]
SESSION_RESOLVER_KEY = web.AppKey("session_resolver", SessionResolver)

DIRECTORY_RETRY_AFTER_SECONDS = 30


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = access_of(request.match_info.handler)
    if access is Access.PUBLIC:
        return await handler(request)

    principal_or_error = await _principal(request, access)
    if isinstance(principal_or_error, web.Response):
        return principal_or_error
    principal = principal_or_error

    denial = _denial(request, access, principal)
    if denial is not None:
        await request.app[AUTHENTICATOR_KEY].record(
            principal.name, "auth.forbidden", reason=denial, channel=request.match_info.get("channel"),
            address=_address(request), access=access.value,
        )
        return json_error(403, denial)

    request[PRINCIPAL_KEY] = principal
    response = await handler(request)
    if not principal.is_anonymous:
        _mark_private(response)
    return response


async def _principal(request: web.Request, access: Access) -> Principal | web.Response:
    """Return the request's principal, or the error response that ends the request."""
    authenticator = request.app[AUTHENTICATOR_KEY]
    address = _address(request)
    try:
        credentials = parse_credentials(request.headers.get("Authorization"), _path_token(request))
    except CredentialsError as exc:
        await authenticator.reject("unknown", address, f"malformed credentials: {exc}")
        return _unauthorized(request, "invalid credentials")

    if credentials is None:
        # A request with an Authorization header or path token never falls back to a cookie.
        resolver = request.app.get(SESSION_RESOLVER_KEY)
        session_principal = await resolver(request) if resolver is not None else None
        if session_principal is not None:
            return session_principal
        if _anonymous_may_read(request, access):
            return ANONYMOUS
        return _unauthorized(request, "authentication required")

    try:
        return await authenticator.authenticate(credentials, address)
    except TooManyAttemptsError as exc:
        return json_error(429, str(exc), headers={"Retry-After": str(exc.retry_after)})
    except AuthenticationError:
        return _unauthorized(request, "invalid credentials")
    except DirectoryUnavailableError as exc:
        logger.error("sign-in from %s failed because the directory is unavailable: %s", address, exc)
        return json_error(
            503, "the user directory is unavailable; try again later",
            headers={"Retry-After": str(DIRECTORY_RETRY_AFTER_SECONDS)},
        )


def _denial(request: web.Request, access: Access, principal: Principal) -> str | None:
    """Return why `principal` may not use the route, or None when it may."""
    roles = principal.roles
    if access is Access.CHANNEL_READ:
        channel = request.match_info.get("channel", "")
        if roles.can_read(channel) or _anonymous_may_read(request, access):
            return None
        return "your account may not read this channel"
    if principal.is_anonymous:
        return "authentication required"
    if access is Access.PASSWORD and principal.source == "token":
        return "sign in with a user name and password to manage tokens"
    if access is Access.REVIEWER and not roles.is_reviewer:
        return "this needs the reviewer role"
    if access is Access.ADMIN and not roles.admin:
        return "this needs the admin role"
    return None


def _anonymous_may_read(request: web.Request, access: Access) -> bool:
    if access is not Access.CHANNEL_READ:
        return False
    channel = request.match_info.get("channel")
    return channel is not None and channel in request.app[CONFIG_KEY].auth.anonymous_read


def _path_token(request: web.Request) -> str | None:
    """Return the conda token of a `/t/<token>/...` path, even when no route matched."""
    token = request.match_info.get("token")
    if token is not None:
        return token
    if request.path.startswith("/t/"):
        return request.path.split("/", 3)[2]
    return None


def _unauthorized(request: web.Request, message: str) -> web.Response:
    realm = request.app[CONFIG_KEY].auth.realm
    return json_error(401, message, headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


def _mark_private(response: web.StreamResponse) -> None:
    current = response.headers.get("Cache-Control")
    if current is None:
        response.headers["Cache-Control"] = "private"
    elif "private" not in current:
        response.headers["Cache-Control"] = f"private, {current}"


def _address(request: web.Request) -> str:
    # NOTE: behind a reverse proxy this is the proxy's address, so the address limit
    # applies to all clients of that proxy together.
    return request.remote or "unknown"
