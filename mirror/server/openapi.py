"""The OpenAPI 3.1 document of the JSON API, served at `/api/openapi.json`.

Written by hand next to the handlers in `mirror.server.api` and
`mirror.auth.api`; a test compares its paths with the router's `/api/`
routes, so a route cannot be added without being described. Channel
routes and dashboard pages are not part of the JSON API and are left out.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mirror.auth.access import Access, requires

OPENAPI_PATH = "/api/openapi.json"


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get(OPENAPI_PATH, serve_openapi)


@requires(Access.PUBLIC)
async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(), headers={"Cache-Control": "no-cache"})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


PAGE_PARAM = _query("page", "Page number, from 1; 50 rows per page.", {"type": "integer", "minimum": 1})
ID_PARAM = _path("membership_id", "Package id: one file in one channel.", {"type": "integer"})
COMMENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": ["comment"],
        "properties": {"comment": {"type": "string", "description": "Why; required, recorded in the audit log."}},
    }}},
}

QUEUE_PARAMS = [
    _query("state", "Comma-separated states, or `all`. Default `passed` (waiting for review)."),
    _query("check", "Only packages whose result of this check is warn, fail or error."),
    _query("name", "Package name prefix."),
    _query("upstream", "Upstream name."),
    _query("max_age_days", "Only files first seen within this many days.", {"type": "number"}),
    _query("min_age_days", "Only files first seen at least this many days ago.", {"type": "number"}),
    PAGE_PARAM,
]


def _review_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/review/channels": {"get": {
            "summary": "Channels with counts by state, approved size and last publish",
            "description": "Reviewers see every channel; readers the channels they may read.",
            "responses": {"200": _json({"type": "object", "properties": {
                "channels": {"type": "array", "items": _ref("ChannelSummary")}}}, "The channels."),
                **_errors(401)},
        }},
        "/api/review/channels/{channel}/queue": {"get": {
            "summary": "The review queue of one channel, filtered and paginated",
            "parameters": [_path("channel", "Channel name."), *QUEUE_PARAMS],
            "responses": {"200": _json(_page_of("QueueRow"), "One page of packages."), **_errors(400, 401, 404)},
        }},
        "/api/review/channels/{channel}/approve-matching": {"post": {
            "summary": "Approve every package waiting for review that matches a filter (at most 500)",
            "description": "Writes a `bulk_approve` audit event besides one event per approval.",
            "parameters": [_path("channel", "Channel name.")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["comment"],
                "properties": {
                    "comment": {"type": "string"}, "check": {"type": "string"}, "name": {"type": "string"},
                    "upstream": {"type": "string"}, "max_age_days": {"type": ["number", "string"]},
                    "min_age_days": {"type": ["number", "string"]},
                }}}}},
            "responses": {"200": _json(_ref("BulkResult"), "What happened to each package."),
                          **_errors(400, 401, 403, 404, 409)},
        }},
        "/api/review/packages/{membership_id}": {"get": {
            "summary": "One package in one channel: record, checks, files, scripts and the diff",
            "description": "`diff` compares with the newest approved version of the same name, subdir and "
                           "format in the channel, or is null.",
            "parameters": [ID_PARAM, _query("files", "`false` skips reading the file list.",
                                            {"type": "string", "enum": ["true", "false"]})],
            "responses": {"200": _json(_ref("PackageDetail"), "The package."), **_errors(401, 404)},
        }},
        "/api/review/actions": {"post": {
            "summary": "Apply one action to several packages",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["action", "ids", "comment"],
                "properties": {
                    "action": {"type": "string", "enum": ["approve", "reject", "revoke", "promote"]},
                    "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 500},
                    "comment": {"type": "string"},
                    "channel": {"type": "string", "description": "Target channel of promote."},
                }}}}},
            "responses": {"200": _json(_ref("BulkResult"), "What happened to each package."),
                          **_errors(400, 401, 403)},
        }},
        "/api/review/runs": {"get": {
            "summary": "Sync, validate and publish runs, newest first",
            "parameters": [PAGE_PARAM],
            "responses": {"200": _json(_page_of("Run"), "One page of runs."), **_errors(400, 401, 403)},
        }},
        "/api/review/whitelist": {"get": {
            "summary": "The whitelist entries, or the error that makes the file invalid",
            "responses": {"200": _json({"type": "object", "properties": {
                "path": {"type": "string"}, "entries": {"type": "array", "items": {"type": "object"}},
                "error": {"type": ["string", "null"]}}}, "The whitelist."), **_errors(401, 403)},
        }},
        "/api/review/audit": {"get": {
            "summary": "Search the audit log (admins)",
            "parameters": [
                _query("actor", "Exact actor."), _query("action", "Exact action, such as `approved`."),
                _query("channel", "Exact channel."), _query("text", "Substring of the reason or file name."),
                PAGE_PARAM,
            ],
            "responses": {"200": _json(_page_of("AuditEvent"), "One page of events."), **_errors(400, 401, 403)},
        }},
    }
    for action, summary in (
        ("approve", "Record an approval; the package is approved once the channel has enough of them"),
        ("reject", "Reject the package in this channel"),
        ("revoke", "Withdraw an approval; the package returns to the queue"),
    ):
        paths[f"/api/review/packages/{{membership_id}}/{action}"] = {"post": {
            "summary": summary, "parameters": [ID_PARAM], "requestBody": COMMENT_BODY,
            "responses": {"200": _json(_ref("ActionResult"), "Done."), **_errors(400, 401, 403, 404, 409)},
        }}
    paths["/api/review/packages/{membership_id}/promote"] = {"post": {
        "summary": "Offer an approved package to another channel; its checks run on the next validate",
        "parameters": [ID_PARAM],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["channel", "comment"],
            "properties": {"channel": {"type": "string"}, "comment": {"type": "string"}}}}}},
        "responses": {"200": _json(_ref("ActionResult"), "The new membership in the target channel."),
                      **_errors(400, 401, 403, 404, 409)},
    }}
    return paths


def _auth_paths() -> dict[str, Any]:
    return {
        "/api/whoami": {"get": {
            "summary": "The signed-in principal, its roles and readable channels",
            "responses": {"200": _json({"type": "object", "properties": {
                "user": {"type": "string"}, "source": {"type": "string"}, "token_id": {"type": ["integer", "null"]},
                "admin": {"type": "boolean"}, "reviewer": {"type": "boolean"},
                "channels": {"type": "array", "items": {"type": "string"}}}}, "The principal."), **_errors(401)},
        }},
        "/api/tokens": {
            "get": {
                "summary": "The caller's tokens (every token for an admin); needs a password sign-in",
                "responses": {"200": _json({"type": "object", "properties": {
                    "tokens": {"type": "array", "items": _ref("Token")}}}, "The tokens."), **_errors(401, 403)},
            },
            "post": {
                "summary": "Create a token; the token text is in this response only",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "required": ["name", "channels"],
                    "properties": {"name": {"type": "string"},
                                   "channels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                   "expires_days": {"type": "integer", "minimum": 1}}}}}},
                "responses": {"201": _json({"allOf": [_ref("Token"), {"type": "object", "properties": {
                    "token": {"type": "string"}}}]}, "The new token."), **_errors(400, 401, 403)},
            },
        },
        "/api/tokens/{token_id}": {"delete": {
            "summary": "Revoke a token",
            "parameters": [_path("token_id", "Token id.", {"type": "integer"})],
            "responses": {"200": _json(_ref("Token"), "The revoked token."), **_errors(401, 403, 404)},
        }},
        "/api/sync/{upstream}": {"post": {
            "summary": "Start a sync cycle of one upstream in the scheduler service (admins)",
            "parameters": [_path("upstream", "Upstream name.")],
            "responses": {
                "202": _json({"type": "object", "properties": {"upstream": {"type": "string"},
                                                               "status": {"const": "started"}}}, "Started."),
                "409": _json({"type": "object", "properties": {"upstream": {"type": "string"},
                                                               "status": {"const": "busy"}}},
                             "A run of that upstream holds its lease."),
                "503": {"$ref": "#/components/responses/E503"},
                **_errors(401, 403, 404),
            },
        }},
        OPENAPI_PATH: {"get": {
            "summary": "This document", "security": [],
            "responses": {"200": {"description": "The OpenAPI document."}},
        }},
    }


def _page_of(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "total", "page", "pages"], "properties": {
        "items": {"type": "array", "items": _ref(item)}, "total": {"type": "integer"},
        "page": {"type": "integer"}, "pages": {"type": "integer"}, "page_size": {"type": "integer"},
        "filters": {"type": "object", "additionalProperties": {"type": "string"}}}}


def _schemas() -> dict[str, Any]:
    text, number, when = {"type": "string"}, {"type": "integer"}, {"type": ["string", "null"], "format": "date-time"}
    state = {"type": "string", "enum": ["pending", "passed", "failed", "approved", "rejected", "retired"]}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": text}},
        "QueueRow": {"type": "object", "properties": {
            "id": number, "channel": text, "state": state, "reason": {"type": ["string", "null"]},
            "requested_by": {"type": ["string", "null"]}, "filename": text, "name": text, "version": text,
            "build": text, "subdir": text, "upstream": text, "size": {"type": ["integer", "null"]},
            "first_seen": when, "updated_at": when,
            "checks_not_passed": {"type": "array", "items": {"type": "object", "properties": {
                "check": text, "outcome": text, "summary": text}}}}},
        "PackageDetail": {"allOf": [_ref("QueueRow"), {"type": "object", "properties": {
            "sha256": {"type": ["string", "null"]}, "record": {"type": "object"},
            "depends": {"type": "array", "items": text}, "constrains": {"type": "array", "items": text},
            "licence": {"type": ["string", "null"]},
            "results": {"type": "array", "items": {"type": "object", "properties": {
                "check": text, "version": text, "outcome": text, "summary": text, "evidence": {"type": "object"},
                "at": when}}},
            "approvals": {"type": "array", "items": {"type": "object"}},
            "scripts": {"type": "array", "items": {"type": "object"}},
            "files": {"type": "object", "properties": {"entries": {"type": "array", "items": {"type": "object"}},
                                                        "truncated": {"type": "boolean"},
                                                        "error": {"type": ["string", "null"]}}},
            "diff": {"type": ["object", "null"]},
            "audit": {"type": "array", "items": _ref("AuditEvent")}}}]},
        "ActionResult": {"type": "object", "properties": {
            "id": number, "ok": {"type": "boolean"}, "message": text, "state": {"type": ["string", "null"]}}},
        "BulkResult": {"type": "object", "properties": {
            "succeeded": number, "failed": number, "results": {"type": "array", "items": _ref("ActionResult")}}},
        "ChannelSummary": {"type": "object", "properties": {
            "name": text, "description": text, "approval": text, "approvals_required": number,
            "checks": {"type": "array", "items": text}, "counts": {"type": "object"},
            "approved_bytes": number, "last_publish": when}},
        "Run": {"type": "object", "properties": {
            "id": number, "kind": text, "status": text, "started_at": when, "finished_at": when,
            "counts": {"type": "object"}, "errors": {"type": "array"}}},
        "AuditEvent": {"type": "object", "properties": {
            "id": number, "at": when, "actor": text, "action": text, "channel": {"type": ["string", "null"]},
            "artifact_id": {"type": ["integer", "null"]}, "filename": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]}, "details": {"type": "object"}}},
        "Token": {"type": "object", "properties": {
            "id": number, "name": text, "owner": text, "channels": {"type": "array", "items": text},
            "created_at": when, "expires_at": when, "revoked_at": when, "last_used_at": when}},
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of every `/api/` route."""
    error = {"application/json": {"schema": _ref("Error")}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "conda mirror review API",
            "version": "1",
            "description": "Review queue, package details and review actions of the conda mirror, and the "
                           "caller's tokens. Every route answers with and without a trailing slash.",
        },
        "security": [{"basic": []}, {"bearer": []}, {"session": []}],
        "paths": {**_review_paths(), **_auth_paths()},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "Directory or local user."},
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from POST /api/tokens."},
                "session": {"type": "apiKey", "in": "cookie", "name": "mirror_session",
                            "description": "Dashboard sign-in; POSTs also need the X-CSRF-Token header."},
            },
            "schemas": _schemas(),
            "responses": {
                f"E{code}": {"description": description, "content": error}
                for code, description in (
                    (400, "Invalid input."), (401, "Credentials missing or wrong."),
                    (403, "Not allowed for this account, or CSRF token missing."),
                    (404, "Not found, or not visible to this account."),
                    (409, "The action is not allowed in the package's state."),
                    (503, "This process runs no scheduler, or a dependency is unavailable."),
                )
            },
        },
    }
