"""JSON API of the review dashboard: listings and every review action.

Routes (each also with a trailing slash, without a redirect, like the
token API), described for clients by `/api/openapi.json`:

* `GET  /api/review/channels`: channels with counts, size and last publish;
* `GET  /api/review/channels/{channel}/queue`: the filtered, paginated queue;
* `POST /api/review/channels/{channel}/approve-matching`: bulk approval of a filter;
* `GET  /api/review/packages/{id}`: one package in one channel, with its diff;
* `POST /api/review/packages/{id}/{approve|reject|revoke|promote}`;
* `POST /api/review/actions`: one action on several package ids;
* `GET  /api/review/runs`, `/api/review/whitelist` (reviewers) and
  `/api/review/audit` (admins).

A refused action is a 409 whose `error` is the `ReviewError` message
(four eyes, requester, wrong state). Cookie-authenticated POSTs need the
`X-CSRF-Token` header (see `mirror.dashboard.sessions`); basic and
bearer clients need none.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.dashboard import queries
from mirror.dashboard.context import SERVICE_KEY, in_thread, principal_of
from mirror.dashboard.service import ACTIONS, MAX_BULK, NotVisibleError, Outcome
from mirror.review.actions import ReviewError
from mirror.server.errors import json_error

logger = logging.getLogger(__name__)

PREFIX = "/api/review"
MAX_BODY_KEYS = 16
NUMERIC_KEYS = frozenset({"max_age_days", "min_age_days"})


def add_review_api_routes(app: web.Application) -> None:
    for suffix in ("", "/"):
        app.router.add_get(PREFIX + "/channels" + suffix, list_channels)
        app.router.add_get(PREFIX + "/channels/{channel}/queue" + suffix, queue)
        app.router.add_post(PREFIX + "/channels/{channel}/approve-matching" + suffix, approve_matching)
        app.router.add_get(PREFIX + "/packages/{membership_id}" + suffix, package)
        for action in ACTIONS:
            app.router.add_post(PREFIX + "/packages/{membership_id}/" + action + suffix, _ACTION_HANDLERS[action])
        app.router.add_post(PREFIX + "/actions" + suffix, bulk_action)
        app.router.add_get(PREFIX + "/runs" + suffix, runs)
        app.router.add_get(PREFIX + "/whitelist" + suffix, whitelist)
        app.router.add_get(PREFIX + "/audit" + suffix, audit)


def json_body(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_encode)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@requires(Access.AUTHENTICATED)
async def list_channels(request: web.Request) -> web.Response:
    summaries = await in_thread(request.app[SERVICE_KEY].channels, principal_of(request))
    return json_body({"channels": summaries})


@requires(Access.AUTHENTICATED)
async def queue(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    try:
        query_filter = queries.queue_filter_from(channel, request.query)
        page = await in_thread(request.app[SERVICE_KEY].queue, principal_of(request), query_filter,
                               queries.page_from(request.query))
    except queries.QueryError as exc:
        return json_error(400, str(exc))
    except NotVisibleError:
        return json_error(404, "no such channel, or your account may not see it")
    return json_body({**page.as_json(), "filters": page.filters})


@requires(Access.AUTHENTICATED)
async def package(request: web.Request) -> web.Response:
    membership_id = _membership_id(request)
    if membership_id is None:
        return json_error(404, "no such package")
    files = request.query.get("files", "true") != "false"
    try:
        detail = await in_thread(request.app[SERVICE_KEY].package, principal_of(request), membership_id,
                                 with_files=files)
    except NotVisibleError:
        return json_error(404, "no such package, or your account may not see its channel")
    return json_body(detail)


def _action_handler(action: str):
    @requires(Access.REVIEWER)
    async def handler(request: web.Request) -> web.Response:
        return await package_action(request, action)

    handler.__name__ = f"{action}_package"
    return handler


async def package_action(request: web.Request, action: str) -> web.Response:
    """Apply one review action to the package in the path; the body contains `comment` (and `channel`)."""
    membership_id = _membership_id(request)
    if membership_id is None:
        return json_error(404, "no such package")
    body = await _object_body(request)
    if isinstance(body, web.Response):
        return body
    problem = _check_strings(body, {"comment", "channel"})
    if problem:
        return json_error(400, problem)
    if action == "promote" and not body.get("channel"):
        return json_error(400, "promote needs 'channel': the target channel")

    try:
        outcomes = await in_thread(request.app[SERVICE_KEY].act, principal_of(request), action, [membership_id],
                                   body.get("comment", ""), body.get("channel"))
    except ReviewError as exc:
        return json_error(400, str(exc))
    return _single(outcomes[0])


_ACTION_HANDLERS = {action: _action_handler(action) for action in ACTIONS}


def _single(outcome: Outcome) -> web.Response:
    if outcome.ok:
        return json_body(outcome.as_json())
    if outcome.message.startswith("no package with id"):
        return json_error(404, outcome.message)
    return json_error(409, outcome.message)


@requires(Access.REVIEWER)
async def bulk_action(request: web.Request) -> web.Response:
    body = await _object_body(request)
    if isinstance(body, web.Response):
        return body
    problem = _check_strings({k: v for k, v in body.items() if k != "ids"}, {"action", "comment", "channel"})
    ids = body.get("ids")
    if problem is None and "ids" not in body:
        problem = "'ids' is required: a list of package ids"
    if problem is None and (not isinstance(ids, list) or not ids or len(ids) > MAX_BULK
                            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        problem = f"'ids' must be a list of 1 to {MAX_BULK} package ids (integers)"
    if problem:
        return json_error(400, problem)

    try:
        outcomes = await in_thread(request.app[SERVICE_KEY].act, principal_of(request), body.get("action", ""),
                                   ids, body.get("comment", ""), body.get("channel"))
    except ReviewError as exc:
        return json_error(400, str(exc))
    return json_body(_results(outcomes))


@requires(Access.REVIEWER)
async def approve_matching(request: web.Request) -> web.Response:
    body = await _object_body(request)
    if isinstance(body, web.Response):
        return body
    filter_keys = {"check", "name", "upstream", "max_age_days", "min_age_days"}
    problem = _check_strings(body, {"comment"} | filter_keys)
    if problem:
        return json_error(400, problem)
    try:
        query_filter = queries.queue_filter_from(request.match_info["channel"],
                                                 {k: str(body[k]) for k in filter_keys if k in body})
        outcomes = await in_thread(request.app[SERVICE_KEY].bulk_approve, principal_of(request), query_filter,
                                   body.get("comment", ""))
    except queries.QueryError as exc:
        return json_error(400, str(exc))
    except NotVisibleError:
        return json_error(404, "no such channel")
    except ReviewError as exc:
        return json_error(409, str(exc))
    return json_body(_results(outcomes))


def _results(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "succeeded": sum(1 for o in outcomes if o.ok),
        "failed": sum(1 for o in outcomes if not o.ok),
        "results": [o.as_json() for o in outcomes],
    }


@requires(Access.REVIEWER)
async def runs(request: web.Request) -> web.Response:
    try:
        page = await in_thread(request.app[SERVICE_KEY].runs, queries.page_from(request.query))
    except queries.QueryError as exc:
        return json_error(400, str(exc))
    return json_body(page.as_json())


@requires(Access.REVIEWER)
async def whitelist(request: web.Request) -> web.Response:
    return json_body(await in_thread(request.app[SERVICE_KEY].whitelist))


@requires(Access.ADMIN)
async def audit(request: web.Request) -> web.Response:
    audit_filter = queries.AuditFilter.from_query(request.query)
    try:
        page = await in_thread(request.app[SERVICE_KEY].audit, audit_filter, queries.page_from(request.query))
    except queries.QueryError as exc:
        return json_error(400, str(exc))
    return json_body({**page.as_json(), "filters": page.filters})


def _membership_id(request: web.Request) -> int | None:
    text = request.match_info["membership_id"]
    return int(text) if text.isdigit() and len(text) < 12 else None


async def _object_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "the body must be a JSON object, such as {\"comment\": \"why\"}")
    if not isinstance(body, dict) or len(body) > MAX_BODY_KEYS:
        return json_error(400, "the body must be a JSON object, such as {\"comment\": \"why\"}")
    return body


def _check_strings(body: dict[str, Any], allowed: set[str]) -> str | None:
    """Return what is wrong with a body of string fields, or None."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)[:200]}; accepted: {', '.join(sorted(allowed))}"
    for key, value in body.items():
        numeric = key in NUMERIC_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
        if not isinstance(value, str) and not numeric:
            return f"'{key}' must be a string"
    return None
