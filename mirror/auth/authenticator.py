"""Turn credentials into a principal: a user or token with roles, or an authentication error.

Order of checks for a password: attempt limits, empty password, the
cache, then the local users file (a user named there is never looked up
in the directory) or the directory. For a token: the address limit, the
cache, then the catalog, and the owner's current roles, so a token never
reads more than its owner may read now.

Logins (checks that reached the directory or the users file), the first
use of a token in each cache window, and failures are audit events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.exc import SQLAlchemyError

from mirror.auth.cache import AuthCache
from mirror.auth.credentials import PasswordCredentials, TokenCredentials
from mirror.auth.ldap import DirectoryUnavailableError, LdapDirectory
from mirror.auth.limits import AttemptLimiter
from mirror.auth.local import LocalUsers
from mirror.auth.roles import Group, RoleMap, Roles
from mirror.auth.tokens import TokenStore
from mirror.catalog.session import Catalog
from mirror.config.auth import AuthConfig
from mirror.errors import MirrorError
from mirror.jobs.context import audit

logger = logging.getLogger(__name__)

MAX_ACTOR_CHARS = 255


@dataclass(frozen=True)
class Principal:
    """Who made a request: a user signed in with a password, a token, or nobody."""

    name: str
    source: str
    roles: Roles
    token_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.source == "anonymous"


ANONYMOUS = Principal(name="anonymous", source="anonymous", roles=Roles())


class AuthenticationError(MirrorError):
    """The credentials are wrong, expired or revoked; the message never contains them."""


class TooManyAttemptsError(MirrorError):
    """The user name or address has failed too often; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-in attempts; retry after {retry_after} seconds")
        self.retry_after = retry_after


class Authenticator:
    """Checks credentials against the users file, the directory and the token table."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        catalog: Catalog,
        directory: LdapDirectory | None = None,
        local_users: LocalUsers | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.catalog = catalog
        self.tokens = TokenStore(catalog)
        self.directory = directory
        self.local_users = local_users
        self.role_map = RoleMap(config.roles)
        self.limiter = AttemptLimiter(config.limits, clock=clock)
        self.cache: AuthCache[Principal] = AuthCache(config.cache_seconds, clock=clock)

    @classmethod
    def from_config(cls, config: AuthConfig, catalog: Catalog) -> Authenticator:
        directory = LdapDirectory.from_config(config.ldap) if config.ldap else None
        local_users = LocalUsers(config.users_file) if config.users_file else None
        return cls(config, catalog=catalog, directory=directory, local_users=local_users)

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()

    async def authenticate(
        self, credentials: PasswordCredentials | TokenCredentials, address: str
    ) -> Principal:
        """Return the principal of `credentials`.

        Raises AuthenticationError, TooManyAttemptsError, or
        DirectoryUnavailableError when the directory cannot be reached.
        """
        if isinstance(credentials, TokenCredentials):
            return await self._authenticate_token(credentials.token, address)
        return await self._authenticate_password(credentials.username, credentials.password, address)

    async def _authenticate_password(self, username: str, password: str, address: str) -> Principal:
        self._check_limits(address, username)
        if not password:
            await self.reject(username, address, "empty password")
            raise AuthenticationError("password is empty")

        key = self.cache.key("password", username, password)
        cached = self.cache.get(key)
        if cached is not None:
            return cached

        principal = await _in_thread(self._verify_password, username, password)
        if principal is None:
            await self.reject(username, address, "invalid user name or password")
            raise AuthenticationError("invalid user name or password")

        self.cache.put(key, principal)
        self.limiter.record_success(username)
        await self.record(principal.name, "auth.login", source=principal.source, address=address)
        return principal

    def _verify_password(self, username: str, password: str) -> Principal | None:
        if self.local_users is not None and self.local_users.get(username) is not None:
            user = self.local_users.verify(username, password)
            if user is None:
                return None
            groups = [Group(dn="", name=name) for name in user.groups]
            return Principal(user.username, "local", self.role_map.roles_for(groups, user.roles))

        if self.directory is None:
            if self.local_users is not None:
                # Costs one hash check, so an unknown name takes as long to reject as a wrong password.
                self.local_users.verify(username, password)
            return None
        entry = self.directory.authenticate(username, password)
        if entry is None:
            return None
        return Principal(entry.username, "ldap", self.role_map.roles_for(entry.groups))

    async def _authenticate_token(self, token: str, address: str) -> Principal:
        self._check_limits(address, None)
        key = self.cache.key("token", token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached

        principal = await _in_thread(self._verify_token, token)
        if principal is None:
            await self.reject("token", address, "invalid, expired or revoked token")
            raise AuthenticationError("invalid, expired or revoked token")

        self.cache.put(key, principal)
        await self.record(principal.name, "auth.token_used", token_id=principal.token_id, address=address)
        return principal

    def _verify_token(self, token: str) -> Principal | None:
        row = self.tokens.find_active(token)
        if row is None:
            return None
        owner_roles = self.current_roles(row.owner, row.owner_source)
        if owner_roles is None:
            logger.info("token %d belongs to %s, who can no longer sign in; denied", row.id, row.owner)
            return None
        return Principal(row.owner, "token", owner_roles.limited_to(row.channels), token_id=row.id)

    def current_roles(self, owner: str, source: str) -> Roles | None:
        """Return the roles an owner has now, or None when the owner no longer exists."""
        if source == "cli":
            # The operator who ran `mirror tokens create` chose the channels.
            return Roles(admin=True)
        if source == "local" and self.local_users is not None:
            user = self.local_users.get(owner)
            if user is None or user.disabled:
                return None
            groups = [Group(dn="", name=name) for name in user.groups]
            return self.role_map.roles_for(groups, user.roles)
        if source == "ldap" and self.directory is not None:
            entry = self.directory.lookup(owner)
            return None if entry is None else self.role_map.roles_for(entry.groups)
        return None

    def forget_token(self, token_id: int) -> None:
        """Drop cached sign-ins of a revoked token in this process."""
        self.cache.discard_where(lambda principal: principal.token_id == token_id)

    def _check_limits(self, address: str, username: str | None) -> None:
        retry_after = self.limiter.retry_after(address, username)
        if retry_after is not None:
            raise TooManyAttemptsError(retry_after)

    async def reject(self, actor: str, address: str, reason: str) -> None:
        """Count a failed attempt against the address (and user name) and audit it."""
        username = None if actor == "token" else actor
        self.limiter.record_failure(address, username)
        logger.info("sign-in failed for %r from %s: %s", actor[:MAX_ACTOR_CHARS], address, reason)
        await self.record(actor, "auth.denied", reason=reason, address=address)

    async def record(self, actor: str, action: str, *, reason: str | None = None, channel: str | None = None,
                     **details) -> None:
        """Append an audit event from a worker thread; a failed write is logged, not raised."""
        await _in_thread(self._write_audit, actor[:MAX_ACTOR_CHARS], action, reason, channel, details)

    def _write_audit(self, actor: str, action: str, reason: str | None, channel: str | None,
                     details: dict) -> None:
        try:
            with self.catalog.session() as session:
                audit(session, actor, action, reason=reason, channel=channel, **details)
        except SQLAlchemyError:
            logger.error("could not write the audit event %s for %r", action, actor, exc_info=True)


async def _in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args))


__all__ = [
    "ANONYMOUS",
    "AuthenticationError",
    "Authenticator",
    "DirectoryUnavailableError",
    "Principal",
    "TooManyAttemptsError",
]
