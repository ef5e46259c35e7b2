"""Creating, checking, listing and revoking tokens.

A token is `cdm_` followed by 43 URL-safe characters (32 random bytes),
so it can stand in a URL path (`/t/<token>/main/...`) unchanged. The
catalog keeps its SHA-256; the token itself is shown once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mirror.auth.models import ApiToken
from mirror.catalog.models import utcnow
from mirror.catalog.session import Catalog
from mirror.errors import MirrorError
from mirror.jobs.context import audit

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "cdm_"
TOKEN_PATTERN = re.compile(r"cdm_[A-Za-z0-9_-]{43}")
MAX_NAME_CHARS = 128


class TokenError(MirrorError):
    """A token request is invalid; the message names the value and how to fix it."""


class TokenNotFoundError(TokenError):
    """No token with that id exists, or the caller may not see it."""


@dataclass(frozen=True)
class IssuedToken:
    """A newly created token: its row and the only copy of the token text."""

    row: ApiToken
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.row.id}, token=<redacted>)"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Tokens in the catalog; every method opens and commits its own session."""

    def __init__(self, catalog: Catalog, *, now: Callable[[], datetime] = utcnow):
        self._catalog = catalog
        self._now = now

    def create(
        self,
        *,
        name: str,
        owner: str,
        owner_source: str,
        channels: Iterable[str],
        expires_in: timedelta,
    ) -> IssuedToken:
        """Store a new token and return it with its text; audit the creation."""
        channels = sorted(set(channels))
        _check_name(name)
        if not channels:
            raise TokenError("a token needs at least one channel; name them with --channel or 'channels'")
        if expires_in <= timedelta(0):
            raise TokenError("a token's lifetime must be positive")

        token = generate_token()
        created = self._now()
        row = ApiToken(
            name=name, owner=owner, owner_source=owner_source, token_hash=hash_token(token),
            channels=channels, created_at=created, expires_at=created + expires_in,
        )
        with self._catalog.session() as session:
            session.add(row)
            session.flush()
            audit(session, owner, "token.created", reason=name, token_id=row.id, channels=channels,
                  expires_at=row.expires_at.isoformat())
        logger.info("created token %d %r for %s, channels %s", row.id, name, owner, ", ".join(channels))
        return IssuedToken(row, token)

    def find_active(self, token: str) -> ApiToken | None:
        """Return the token's row when it exists, is not revoked and has not expired."""
        digest = hash_token(token)
        with self._catalog.session() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
            # The lookup is by exact hash; the comparison below keeps the check
            # constant-time even if a database compared strings byte by byte.
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            if row.revoked_at is not None or _aware(row.expires_at) <= self._now():
                return None
            row.last_used_at = self._now()
            return row

    def list(self, owner: str | None = None) -> list[ApiToken]:
        """Return every token (`owner=None`) or the tokens of one owner, newest first."""
        query = select(ApiToken).order_by(ApiToken.id.desc())
        if owner is not None:
            query = query.where(ApiToken.owner == owner)
        with self._catalog.session() as session:
            return list(session.scalars(query))

    def revoke(self, token_id: int, *, actor: str, owner: str | None = None) -> ApiToken:
        """Revoke a token; with `owner` set, only a token of that owner.

        Raises TokenNotFoundError when no such token is visible to the caller.
        Revoking a revoked token changes nothing and returns it.
        """
        with self._catalog.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None or (owner is not None and row.owner != owner):
                raise TokenNotFoundError(f"no token with id {token_id}; list tokens to find its id")
            if row.revoked_at is None:
                row.revoked_at = self._now()
                row.revoked_by = actor
                audit(session, actor, "token.revoked", reason=row.name, token_id=row.id, owner=row.owner)
                logger.info("token %d revoked by %s", token_id, actor)
            return row


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise TokenError("a token needs a name that describes its use, such as 'ci-builds'")
    if len(name) > MAX_NAME_CHARS:
        raise TokenError(f"token name is longer than {MAX_NAME_CHARS} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise TokenError("token name contains a control character")


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
