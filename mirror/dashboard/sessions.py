"""Server-side dashboard sessions, their cookie, and CSRF protection.

A browser signs in once with a user name and password (checked by the
`Authenticator`, with its attempt limits and audit events) and then
carries only a random session id in the `mirror_session` cookie. The
catalog stores the SHA-256 of that id, never the id itself, so a copy of
the database does not let anyone take over a session. The session
expires `SESSION_LIFETIME` after sign-in.

The user's roles are looked up again (directory or users file) once per
`auth.cache_seconds`, as for tokens, so a user removed from a group
loses the role within that window even while signed in.

Every unsafe request (POST, PUT, PATCH, DELETE) authenticated by the
cookie must carry the session's CSRF token, in the `csrf_token` form
field or the `X-CSRF-Token` header. Requests authenticated by basic or
bearer credentials carry no cookie a third-party page could make the
browser send, so they are exempt. The sign-in form uses a separate
double-submit cookie, because no session exists yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import DateTime, Index, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from mirror.auth.authenticator import Authenticator, Principal
from mirror.auth.cache import AuthCache
from mirror.catalog.models import Base, utcnow
from mirror.catalog.session import Catalog
from mirror.server.errors import json_error

logger = logging.getLogger(__name__)

SESSION_COOKIE = "mirror_session"
LOGIN_CSRF_COOKIE = "mirror_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=8)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A session id is 32 random bytes in URL-safe base64: 43 characters.
_SESSION_ID_CHARS = 43


class DashboardSession(Base):
    """A signed-in browser; the primary key is the SHA-256 of the cookie value."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index("ix_dashboard_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class ActiveSession:
    """A live session as loaded for a request: the principal with current roles, and the CSRF token."""

    session_id: str
    principal: Principal
    csrf_token: str
    expires_at: datetime


ACTIVE_SESSION_KEY = web.RequestKey("dashboard_session", ActiveSession)


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionStore:
    """Dashboard sessions in the catalog; every method opens and commits its own session."""

    def __init__(self, catalog: Catalog, *, lifetime: timedelta = SESSION_LIFETIME):
        self._catalog = catalog
        self.lifetime = lifetime

    def create(self, principal: Principal, address: str | None) -> tuple[str, DashboardSession]:
        """Store a new session for `principal`; return the cookie value and the row."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        row = DashboardSession(
            id_hash=hash_session_id(session_id), username=principal.name, source=principal.source,
            csrf_token=secrets.token_urlsafe(32), address=(address or "")[:64] or None,
            created_at=now, expires_at=now + self.lifetime,
        )
        with self._catalog.session() as session:
            session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
            session.add(row)
        return session_id, row

    def find(self, session_id: str) -> DashboardSession | None:
        """Return the unexpired session with this cookie value, or None."""
        if len(session_id) != _SESSION_ID_CHARS:
            return None
        with self._catalog.session() as session:
            row = session.get(DashboardSession, hash_session_id(session_id))
            if row is None or _aware(row.expires_at) <= utcnow():
                return None
            return row

    def delete(self, session_id: str) -> None:
        with self._catalog.session() as session:
            session.execute(delete(DashboardSession).where(DashboardSession.id_hash == hash_session_id(session_id)))


class SessionResolver:
    """Turn a session cookie into a principal, re-checking roles once per cache window."""

    def __init__(self, store: SessionStore, authenticator: Authenticator, cache_seconds: float):
        self.store = store
        self.authenticator = authenticator
        self.cache: AuthCache[ActiveSession] = AuthCache(cache_seconds)

    async def __call__(self, request: web.Request) -> Principal | None:
        """Return the principal of the request's session cookie, or None without a live session."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        key = self.cache.key("session", session_id)
        active = self.cache.get(key)
        if active is None:
            active = await _in_thread(partial(self._load, session_id))
            if active is None:
                return None
            self.cache.put(key, active)
        if active.expires_at <= datetime.now(UTC):
            self.cache.discard(key)
            return None
        request[ACTIVE_SESSION_KEY] = active
        return active.principal

    def _load(self, session_id: str) -> ActiveSession | None:
        row = self.store.find(session_id)
        if row is None:
            return None
        roles = self.authenticator.current_roles(row.username, row.source)
        if roles is None:
            logger.info("session of %s ended: the user can no longer sign in", row.username)
            self.store.delete(session_id)
            return None
        principal = Principal(row.username, row.source, roles)
        return ActiveSession(session_id, principal, row.csrf_token, _aware(row.expires_at))

    def forget(self, session_id: str) -> None:
        self.cache.discard(self.cache.key("session", session_id))


def set_session_cookie(request: web.Request, response: web.StreamResponse, session_id: str, lifetime: timedelta) -> None:
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=int(lifetime.total_seconds()), path="/",
        httponly=True, secure=request.secure, samesite="Lax",
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=request.secure, httponly=True, samesite="Lax")


def login_csrf_token(request: web.Request) -> str:
    """Return the sign-in form's CSRF token: the browser's cookie value, or a new one."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if token and len(token) == _SESSION_ID_CHARS:
        return token
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/dashboard/login",
        httponly=True, secure=request.secure, samesite="Lax",
    )


def tokens_match(expected: str | None, offered: str | None) -> bool:
    if not expected or not offered:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), offered.encode("utf-8", "surrogatepass"))


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reject unsafe requests that a session cookie authenticated without the session's CSRF token."""
    active = request.get(ACTIVE_SESSION_KEY)
    if active is None or request.method in SAFE_METHODS:
        return await handler(request)

    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    if not tokens_match(active.csrf_token, offered):
        logger.warning("rejected a %s request of %s without a valid CSRF token", request.method, active.principal.name)
        return json_error(403, "missing or invalid CSRF token; reload the page and submit the form again")
    return await handler(request)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _in_thread(function):
    return await asyncio.get_running_loop().run_in_executor(None, function)
