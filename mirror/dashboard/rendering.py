"""Jinja2 rendering of dashboard pages, with autoescape, and one-shot flash messages.

A flash message survives one redirect in a short-lived cookie rather
than in server memory, so it also works when the next request reaches
another server replica. Templates autoescape every value, so a package
name or comment cannot inject markup.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mirror.auth.middleware import PRINCIPAL_KEY
from mirror.dashboard.sessions import ACTIVE_SESSION_KEY, CSRF_FIELD

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
FLASH_COOKIE = "mirror_flash"
MAX_FLASH_CHARS = 1500
ENVIRONMENT_KEY = web.AppKey("dashboard_templates", Environment)
STATE_BADGES = {
    "pending": "neutral", "passed": "waiting", "failed": "bad", "approved": "good",
    "rejected": "bad", "retired": "neutral",
    "pass": "good", "warn": "waiting", "fail": "bad", "error": "bad",
    "success": "good", "partial": "waiting", "running": "neutral", "interrupted": "bad",
}


def create_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = format_time
    environment.filters["bytes"] = format_bytes
    environment.filters["badge"] = lambda value: STATE_BADGES.get(str(value), "neutral")
    environment.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    environment.globals["query"] = query_string
    return environment


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def query_string(params: dict[str, Any], **changes: Any) -> str:
    """Return `?...` for `params` with `changes` applied; None removes a key."""
    merged = {**params, **changes}
    return "?" + urlencode({key: value for key, value in merged.items() if value not in (None, "")})


def render(request: web.Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> web.Response:
    """Render `template` with the signed-in user, the CSRF token and any flash message."""
    environment: Environment = request.app[ENVIRONMENT_KEY]
    active = request.get(ACTIVE_SESSION_KEY)
    flash = _read_flash(request)
    body = environment.get_template(template).render(
        # A denied request has no principal set, but its session still names the user.
        principal=request.get(PRINCIPAL_KEY) or (active.principal if active is not None else None),
        csrf_field=CSRF_FIELD,
        csrf_token=active.csrf_token if active is not None else "",
        flash=flash,
        path=request.path,
        **context,
    )
    response = web.Response(text=body, status=status, headers=headers, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/dashboard")
    return response


def redirect(request: web.Request, location: str, *, message: str | None = None, ok: bool = True) -> web.Response:
    """Return a 303 to a dashboard page, carrying a flash message for it."""
    response = web.Response(status=303, headers={"Location": location})
    if message:
        value = quote(("ok:" if ok else "error:") + message[:MAX_FLASH_CHARS], safe="")
        response.set_cookie(FLASH_COOKIE, value, max_age=60, path="/dashboard", httponly=True,
                            secure=request.secure, samesite="Lax")
    return response


def _read_flash(request: web.Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    text = unquote(raw)
    kind, _, message = text.partition(":")
    return {"ok": kind == "ok", "lines": message.split("\n")}

