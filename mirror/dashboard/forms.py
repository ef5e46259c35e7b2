"""Form posts of the dashboard: review actions, bulk approval and token management.

Each handler returns a 303 redirect to the page the form came from
with a flash message that carries the result, or the `ReviewError`
message that explains why the action was rejected (four eyes, requester,
wrong state). The CSRF middleware has already checked the form's token.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.auth.middleware import AUTHENTICATOR_KEY
from mirror.auth.tokens import TokenError, TokenNotFoundError
from mirror.dashboard import queries
from mirror.dashboard.context import SERVICE_KEY, in_thread, principal_of
from mirror.dashboard.rendering import redirect
from mirror.dashboard.service import NotVisibleError, Outcome
from mirror.dashboard.views import render_tokens
from mirror.review.actions import ReviewError
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)

ACTION_FORMS = ("approve", "reject", "revoke", "promote")


@requires(Access.REVIEWER)
async def package_action(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    try:
        membership_id = int(request.match_info["membership_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    if action not in ACTION_FORMS:
        raise web.HTTPNotFound()

    form = await request.post()
    back = f"/dashboard/packages/{membership_id}"
    try:
        outcomes = await in_thread(
            request.app[SERVICE_KEY].act, principal_of(request), action, [membership_id],
            _field(form, "comment"), _field(form, "target") or None,
        )
    except ReviewError as exc:
        return redirect(request, back, message=str(exc), ok=False)
    outcome = outcomes[0]
    if outcome.ok and action == "promote" and outcome.id != membership_id:
        back = f"/dashboard/packages/{outcome.id}"
    return redirect(request, back, message=outcome.message, ok=outcome.ok)


@requires(Access.REVIEWER)
async def queue_action(request: web.Request) -> web.Response:
    """Approve or reject the packages ticked in the queue, or approve every match of the filter."""
    channel = request.match_info["channel"]
    form = await request.post()
    back = "/dashboard/channels/" + channel + _field(form, "return_query")
    # Only a query string of this channel's page may follow, so the redirect stays on the dashboard.
    plain = all(32 < ord(char) < 127 for char in back)
    if not plain or (not back.startswith(f"/dashboard/channels/{channel}?") and back != f"/dashboard/channels/{channel}"):
        back = f"/dashboard/channels/{channel}"
    action = _field(form, "action")
    comment = _field(form, "comment")
    service = request.app[SERVICE_KEY]

    try:
        if action == "approve_matching":
            query_filter = queries.queue_filter_from(channel, {k: _field(form, f"filter_{k}") for k in _FILTER_KEYS})
            outcomes = await in_thread(service.bulk_approve, principal_of(request), query_filter, comment)
        elif action in ("approve", "reject"):
            ids = [int(value) for value in form.getall("id", []) if isinstance(value, str) and value.isdigit()]
            if not ids:
                return redirect(request, back, message="Tick at least one package first.", ok=False)
            outcomes = await in_thread(service.act, principal_of(request), action, ids, comment)
        else:
            return redirect(request, back, message=f"Unknown action {action[:40]!r}.", ok=False)
    except (ReviewError, queries.QueryError, NotVisibleError) as exc:
        return redirect(request, back, message=str(exc), ok=False)
    return redirect(request, back, message=_summary(outcomes), ok=all(o.ok for o in outcomes))


_FILTER_KEYS = ("state", "check", "name", "upstream", "max_age_days", "min_age_days")


def _summary(outcomes: list[Outcome]) -> str:
    done = sum(1 for o in outcomes if o.ok)
    lines = [f"{done} of {len(outcomes)} done."]
    lines += [o.message for o in outcomes if not o.ok][:20]
    lines += [o.message for o in outcomes if o.ok][:20]
    return "\n".join(lines)


@requires(Access.PASSWORD)
async def create_token(request: web.Request) -> web.Response:
    """Create a token for the signed-in user and show it once on the next page."""
    principal = principal_of(request)
    config = request.app[CONFIG_KEY]
    form = await request.post()
    channels = [c for c in form.getall("channels", []) if isinstance(c, str)]
    try:
        days = int(_field(form, "expires_days") or config.auth.tokens.default_expiry_days)
    except ValueError:
        return redirect(request, "/dashboard/tokens", message="Expiry must be a whole number of days.", ok=False)
    if not 1 <= days <= config.auth.tokens.max_expiry_days:
        return redirect(request, "/dashboard/tokens", ok=False,
                        message=f"Expiry must be from 1 to {config.auth.tokens.max_expiry_days} days.")
    if any(not principal.roles.can_read(c) or c not in config.channels for c in channels):
        return redirect(request, "/dashboard/tokens", message="Your account may not read every channel chosen.", ok=False)

    store = request.app[AUTHENTICATOR_KEY].tokens
    try:
        issued = await in_thread(store.create, name=_field(form, "name").strip(), owner=principal.name,
                                 owner_source=principal.source, channels=channels, expires_in=timedelta(days=days))
    except TokenError as exc:
        return redirect(request, "/dashboard/tokens", message=str(exc), ok=False)
    # Rendered at once instead of redirected, so the token never travels in a cookie or URL.
    return await render_tokens(request, new_token=issued.token, status=201)


@requires(Access.PASSWORD)
async def revoke_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    authenticator = request.app[AUTHENTICATOR_KEY]
    try:
        token_id = int(request.match_info["token_id"])
        owner = None if principal.roles.admin else principal.name
        row = await in_thread(authenticator.tokens.revoke, token_id, actor=principal.name, owner=owner)
    except (ValueError, TokenNotFoundError):
        return redirect(request, "/dashboard/tokens", message="No such token.", ok=False)
    authenticator.forget_token(token_id)
    return redirect(request, "/dashboard/tokens", message=f"Token {row.id} ({row.name}) revoked.")


def _field(form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
