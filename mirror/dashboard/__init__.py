"""The review dashboard: server-rendered pages under `/dashboard/`.

`install_dashboard(app, config, catalog, authenticator)` adds the pages,
the static files, the session resolver that lets the auth middleware
accept the session cookie, and the services the JSON API shares. The
server installs it only with `auth.enabled`, because every review action
needs a known actor.

Pages work without JavaScript: every action is a plain form post with
the session's CSRF token.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from mirror.auth.access import Access, requires
from mirror.auth.authenticator import Authenticator
from mirror.auth.middleware import SESSION_RESOLVER_KEY
from mirror.catalog.session import Catalog
from mirror.config.schema import MirrorConfig
from mirror.dashboard import forms, login, views
from mirror.dashboard.context import RESOLVER_KEY, SERVICE_KEY, SESSIONS_KEY
from mirror.dashboard.rendering import ENVIRONMENT_KEY, create_environment, render
from mirror.dashboard.service import ReviewService
from mirror.dashboard.sessions import SessionResolver, SessionStore, csrf_middleware

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/dashboard"

__all__ = ["csrf_middleware", "dashboard_pages_middleware", "install_dashboard"]


def install_dashboard(app: web.Application, config: MirrorConfig, catalog: Catalog,
                      authenticator: Authenticator) -> None:
    """Register the dashboard's services and routes on `app`."""
    store = SessionStore(catalog)
    resolver = SessionResolver(store, authenticator, config.auth.cache_seconds)
    app[SERVICE_KEY] = ReviewService(config, catalog)
    app[SESSIONS_KEY] = store
    app[RESOLVER_KEY] = resolver
    app[SESSION_RESOLVER_KEY] = resolver
    app[ENVIRONMENT_KEY] = create_environment()
    _add_routes(app.router)


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PREFIX, views.home)
    router.add_get(PREFIX + "/", views.home)
    router.add_get(PREFIX + "/login", login.login_form)
    router.add_post(PREFIX + "/login", login.login_submit)
    router.add_post(PREFIX + "/logout", login.logout)
    router.add_get(PREFIX + "/channels", views.channels_page)
    router.add_get(PREFIX + "/channels/{channel}", views.queue_page)
    router.add_post(PREFIX + "/channels/{channel}/actions", forms.queue_action)
    router.add_get(PREFIX + "/packages/{membership_id}", views.package_page)
    router.add_post(PREFIX + "/packages/{membership_id}/{action}", forms.package_action)
    router.add_get(PREFIX + "/runs", views.runs_page)
    router.add_get(PREFIX + "/whitelist", views.whitelist_page)
    router.add_get(PREFIX + "/audit", views.audit_page)
    router.add_get(PREFIX + "/tokens", views.tokens_page)
    router.add_post(PREFIX + "/tokens", forms.create_token)
    router.add_post(PREFIX + "/tokens/{token_id}/revoke", forms.revoke_token)
    router.add_get(PREFIX + "/static/{name}", static_file)


@requires(Access.PUBLIC)
async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # Only the files shipped in the folder, by exact name: no subfolders, no dot files.
    allowed = {path.name for path in STATIC_DIR.iterdir() if path.is_file() and not path.name.startswith(".")}
    if name not in allowed:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "max-age=300"})


@web.middleware
async def dashboard_pages_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the JSON errors of the auth middleware into pages for browsers on `/dashboard/`.

    A page request without credentials is sent to the sign-in form
    instead of getting a 401 (which would open the browser's basic-auth
    prompt), and a 403 becomes a page that names the missing role.
    """
    on_dashboard = request.path == PREFIX or request.path.startswith(PREFIX + "/")
    if not on_dashboard or request.path.startswith(PREFIX + "/static/"):
        return await handler(request)

    try:
        response = await handler(request)
    except web.HTTPNotFound:
        return render(request, "error.html", status=404, title="Not found", message="There is no such page.")
    if response.status == 401 and request.method == "GET" and "Authorization" not in request.headers:
        target = quote(request.path_qs, safe="/")
        raise web.HTTPSeeOther(f"{PREFIX}/login?next={target}")
    if response.status in (401, 403, 429, 503) and response.content_type == "application/json":
        return render(request, "error.html", status=response.status, headers=dict(_kept_headers(response)),
                      title=_TITLES[response.status], message=_message_of(response))
    return response


_TITLES = {401: "Sign-in required", 403: "Not allowed", 429: "Too many attempts", 503: "Service unavailable"}


def _message_of(response: web.StreamResponse) -> str:
    body = getattr(response, "body", None)
    try:
        message = json.loads(body)["error"] if isinstance(body, bytes) else None
    except (ValueError, KeyError, TypeError):
        message = None
    return (message or "The request was refused.").capitalize().rstrip(".") + "."


def _kept_headers(response: web.StreamResponse):
    for name in ("WWW-Authenticate", "Retry-After"):
        if name in response.headers:
            yield name, response.headers[name]
