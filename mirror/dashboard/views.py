"""Read-only dashboard pages: channels, review queue, package, runs, whitelist, audit log, tokens.

Readers see the channels they may read; reviewers see every channel and
get the action forms; admins also get the audit log. The route
declarations (`@requires`) decide access, and the templates only hide
forms that the routes would refuse anyway.
"""

from __future__ import annotations

import logging

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.auth.middleware import AUTHENTICATOR_KEY
from mirror.dashboard import queries
from mirror.dashboard.context import SERVICE_KEY, in_thread, principal_of
from mirror.dashboard.rendering import render
from mirror.dashboard.service import NotVisibleError
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)


@requires(Access.AUTHENTICATED)
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard/channels")


@requires(Access.AUTHENTICATED)
async def channels_page(request: web.Request) -> web.Response:
    summaries = await in_thread(request.app[SERVICE_KEY].channels, principal_of(request))
    return render(request, "channels.html", channels=summaries)


@requires(Access.AUTHENTICATED)
async def queue_page(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    channel = request.match_info["channel"]
    try:
        query_filter = queries.queue_filter_from(channel, request.query)
        page = await in_thread(service.queue, principal_of(request), query_filter, queries.page_from(request.query))
    except queries.QueryError as exc:
        return render(request, "error.html", status=400, title="Invalid filter", message=str(exc))
    except NotVisibleError as exc:
        return render(request, "error.html", status=404, title="Channel not found", message=str(exc))

    config = request.app[CONFIG_KEY]
    return render(
        request, "queue.html", channel=channel, channel_config=config.channels[channel], page=page,
        query_filter=query_filter, states=[s.value for s in queries.MembershipState],
        checks=list(config.channels[channel].checks), upstreams=list(config.upstreams),
        selected_state=request.query.get("state", "passed"),
    )


@requires(Access.AUTHENTICATED)
async def package_page(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        membership_id = int(request.match_info["membership_id"])
        detail = await in_thread(service.package, principal_of(request), membership_id)
    except (ValueError, NotVisibleError):
        return render(request, "error.html", status=404, title="Package not found",
                      message="No package with that id exists in a channel your account may see.")
    config = request.app[CONFIG_KEY]
    return render(
        request, "package.html", package=detail, channel_config=config.channels[detail["channel"]],
        targets=[name for name in config.channels if name != detail["channel"]],
    )


@requires(Access.REVIEWER)
async def runs_page(request: web.Request) -> web.Response:
    try:
        page = await in_thread(request.app[SERVICE_KEY].runs, queries.page_from(request.query))
    except queries.QueryError as exc:
        return render(request, "error.html", status=400, title="Invalid page", message=str(exc))
    return render(request, "runs.html", page=page)


@requires(Access.REVIEWER)
async def whitelist_page(request: web.Request) -> web.Response:
    whitelist = await in_thread(request.app[SERVICE_KEY].whitelist)
    return render(request, "whitelist.html", whitelist=whitelist)


@requires(Access.ADMIN)
async def audit_page(request: web.Request) -> web.Response:
    audit_filter = queries.AuditFilter.from_query(request.query)
    try:
        page = await in_thread(request.app[SERVICE_KEY].audit, audit_filter, queries.page_from(request.query))
    except queries.QueryError as exc:
        return render(request, "error.html", status=400, title="Invalid search", message=str(exc))
    return render(request, "audit.html", page=page, audit_filter=audit_filter)


@requires(Access.PASSWORD)
async def tokens_page(request: web.Request) -> web.Response:
    return await render_tokens(request)


async def render_tokens(request: web.Request, *, new_token: str | None = None, status: int = 200) -> web.Response:
    """Render the tokens page; a new token's text appears only in this one response."""
    principal = principal_of(request)
    store = request.app[AUTHENTICATOR_KEY].tokens
    # Admins see every token, as in the token API.
    rows = await in_thread(store.list, None if principal.roles.admin else principal.name)
    config = request.app[CONFIG_KEY]
    return render(
        request, "tokens.html", status=status, tokens=[row.describe() for row in rows], new_token=new_token,
        channels=principal.roles.readable(config.channels), settings=config.auth.tokens,
    )
