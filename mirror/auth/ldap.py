"""LDAP and Active Directory client: check a password and find the user's groups.

A sign-in takes three steps, all with ldap3:

1. a pooled connection bound as the service account searches `base_dn`
   with `user_filter`, the user name escaped by RFC 4515, and must find
   exactly one entry;
2. a new connection binds as that entry's DN, the DN the directory
   returned, never one built from user input, to check the password;
3. groups come from the entry's `memberOf` values or from a search for
   groups whose `member` is the entry's DN. Nested groups are resolved by
   Active Directory's in-chain matching rule or, for OpenLDAP, by a
   bounded search level by level.

Every method blocks; the server calls them from a worker thread.

Failover is done here rather than with ldap3's ServerPool because, in
ldap3 2.9, a ServerPool keeps a reference to every connection that ever
used it and sleeps 10 s after each cycle in which all servers were down.
"""

from __future__ import annotations

import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPCommunicationError, LDAPExceptionError
from ldap3.utils.conv import escape_filter_chars

from mirror.auth.roles import Group
from mirror.config.auth import IN_CHAIN_RULE, LdapConfig
from mirror.errors import ConfigError, MirrorError

logger = logging.getLogger(__name__)

# A server that failed is tried after the healthy ones for this long.
DOWN_SECONDS = 30.0

Result = TypeVar("Result")


class DirectoryUnavailableError(MirrorError):
    """No directory server responded, or the service account could not bind."""


@dataclass(frozen=True)
class DirectoryUser:
    """A user entry found in the directory, with the groups it belongs to."""

    dn: str
    username: str
    groups: tuple[Group, ...]


def read_service_password(config: LdapConfig) -> str | None:
    """Return the service account password from its environment variable or file."""
    if config.bind_password_env:
        password = os.environ.get(config.bind_password_env)
        if not password:
            raise ConfigError(
                f"auth.ldap.bind_password_env: environment variable {config.bind_password_env} "
                "is not set or empty; export the service account password in it"
            )
        return password
    if config.bind_password_file:
        try:
            password = Path(config.bind_password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"auth.ldap.bind_password_file: could not read {config.bind_password_file}: {exc.strerror}; "
                "check the path and its permissions"
            ) from None
        if not password:
            raise ConfigError(f"auth.ldap.bind_password_file: {config.bind_password_file} is empty")
        return password
    return None


class LdapDirectory:
    """The directory named by `auth.ldap`, with a pool of service-account connections."""

    def __init__(self, config: LdapConfig, service_password: str | None):
        self.config = config
        self._service_password = service_password
        self._servers = [_server(url, config) for url in config.servers]
        self._down_until: dict[int, float] = {}
        self._next_start = 0
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(config.pool_size)

    @classmethod
    def from_config(cls, config: LdapConfig) -> LdapDirectory:
        return cls(config, read_service_password(config))

    def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """Return the user when the password is right, None when the user or password is wrong.

        Raises DirectoryUnavailableError when no server responds.
        """
        # An empty password would make a simple bind anonymous, which succeeds.
        if not password:
            return None
        found = self._find_user(username)
        if found is None:
            return None
        dn, canonical, member_of = found
        if not self._check_password(dn, password):
            return None
        return DirectoryUser(dn=dn, username=canonical, groups=self._groups_of(dn, member_of))

    def lookup(self, username: str) -> DirectoryUser | None:
        """Return the user and groups without a password check, or None when not found."""
        found = self._find_user(username)
        if found is None:
            return None
        dn, canonical, member_of = found
        return DirectoryUser(dn=dn, username=canonical, groups=self._groups_of(dn, member_of))

    def close(self) -> None:
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                return
            _unbind_quietly(connection)

    # Step 1: find the entry.

    def _find_user(self, username: str) -> tuple[str, str, list[str]] | None:
        name = self._strip_domain(username)
        if name is None:
            return None
        search_filter = self.config.user_filter.replace("{username}", escape_filter_chars(name))
        attributes = [self.config.username_attribute]
        if self.config.group_source == "member_of":
            attributes.append(self.config.member_of_attribute)

        entries = self._with_service(
            lambda connection: _search(connection, self.config.base_dn, search_filter, attributes, size_limit=2)
        )
        if len(entries) != 1:
            if len(entries) > 1:
                logger.warning(
                    "user filter matched several entries for user name %r; nobody may sign in with it. "
                    "Make auth.ldap.user_filter match one entry per user", name,
                )
            return None

        dn, values = entries[0]
        canonical = _first(values.get(self.config.username_attribute)) or name
        return dn, canonical, [str(value) for value in values.get(self.config.member_of_attribute, [])]

    def _strip_domain(self, username: str) -> str | None:
        """Turn `DOMAIN\\user` into `user` for a configured domain; None for any other domain."""
        if not self.config.domains or "\\" not in username:
            return username
        domain, _, name = username.partition("\\")
        if domain.upper() not in self.config.domains or not name:
            return None
        return name

    # Step 2: check the password.

    def _check_password(self, dn: str, password: str) -> bool:
        connection = self._open(user=dn, password=password)
        try:
            if connection.bind():
                return True
            result = connection.result or {}
            logger.info(
                "directory rejected the password of %s: %s", dn, result.get("description", "bind failed")
            )
            return False
        except LDAPCommunicationError as exc:
            raise DirectoryUnavailableError(f"directory connection failed during a bind: {type(exc).__name__}") from None
        finally:
            _unbind_quietly(connection)

    # Step 3: groups.

    def _groups_of(self, dn: str, member_of: list[str]) -> tuple[Group, ...]:
        if self.config.nested_groups == "in_chain":
            found = self._search_groups([dn], IN_CHAIN_RULE)
        elif self.config.group_source == "member_of":
            found = list(member_of)
        else:
            found = self._search_groups([dn])

        if self.config.nested_groups == "recursive":
            found = self._expand_nested(found)
        return tuple(Group.from_dn(group_dn) for group_dn in found)

    def _search_groups(self, member_dns: list[str], rule: str | None = None) -> list[str]:
        """Return the DNs of groups with any of `member_dns` as a member."""
        attribute = self.config.member_attribute + (f":{rule}:" if rule else "")
        # A DN from the directory may contain `\,` or `*`, which a filter value must escape.
        members = "".join(f"({attribute}={escape_filter_chars(member)})" for member in member_dns)
        search_filter = f"(&(objectClass={self.config.group_object_class})(|{members}))"
        base = self.config.group_base_dn or self.config.base_dn
        entries = self._with_service(
            lambda connection: _search(connection, base, search_filter, [], size_limit=self.config.max_groups)
        )
        return [group_dn for group_dn, _ in entries]

    def _expand_nested(self, direct: list[str]) -> list[str]:
        # Breadth-first over "groups that contain these groups", bounded in depth
        # and count; the seen set stops membership cycles.
        seen = {group.lower(): group for group in direct}
        frontier = list(direct)
        for _ in range(self.config.max_nesting_depth):
            if not frontier or len(seen) >= self.config.max_groups:
                break
            parents = self._search_groups(frontier)
            frontier = [group for group in parents if group.lower() not in seen]
            seen.update({group.lower(): group for group in frontier})
        return list(seen.values())[: self.config.max_groups]

    # Connections.

    def _with_service(self, operation: Callable[[Connection], Result]) -> Result:
        """Run `operation` on a bound service connection and return the connection to the pool."""
        if not self._slots.acquire(timeout=self.config.receive_timeout_seconds):
            raise DirectoryUnavailableError("every directory connection is busy; try again shortly")
        try:
            pooled = self._take_idle()
            if pooled is not None:
                try:
                    return self._run(pooled, operation)
                except LDAPCommunicationError:
                    # The server may have closed an idle connection: retry once on a new one.
                    logger.debug("pooled directory connection failed; opening a new one")
            try:
                return self._run(self._open_service(), operation)
            except LDAPCommunicationError as exc:
                raise DirectoryUnavailableError(
                    f"directory connection failed during a search: {type(exc).__name__}"
                ) from None
        finally:
            self._slots.release()

    def _run(self, connection: Connection, operation: Callable[[Connection], Result]) -> Result:
        try:
            result = operation(connection)
        except BaseException:
            _unbind_quietly(connection)
            raise
        self._idle.put(connection)
        return result

    def _open_service(self) -> Connection:
        connection = self._open(user=self.config.bind_dn, password=self._service_password)
        try:
            bound = _bind_service(connection)
        except LDAPCommunicationError as exc:
            _unbind_quietly(connection)
            raise DirectoryUnavailableError(
                f"directory connection failed during the service bind: {type(exc).__name__}"
            ) from None
        if not bound:
            description = (connection.result or {}).get("description", "bind failed")
            _unbind_quietly(connection)
            logger.error(
                "service account bind as %s failed: %s; check auth.ldap.bind_dn and its password",
                self.config.bind_dn, description,
            )
            raise DirectoryUnavailableError("the directory rejected the service account")
        return connection

    def _take_idle(self) -> Connection | None:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            return None
        return None if connection.closed else connection

    def _open(self, *, user: str | None, password: str | None) -> Connection:
        """Open a connection to the first server that responds, with StartTLS when configured."""
        failures = []
        for index in self._server_order():
            server = self._servers[index]
            connection = Connection(
                server, user=user, password=password, read_only=True, raise_exceptions=False,
                receive_timeout=self.config.receive_timeout_seconds,
            )
            try:
                connection.open()
                if self.config.start_tls and not connection.start_tls():
                    raise DirectoryUnavailableError(f"StartTLS with {server.host} failed")
            except (LDAPExceptionError, DirectoryUnavailableError, ssl.SSLError) as exc:
                _unbind_quietly(connection)
                self._mark_down(index)
                failures.append(f"{server.host}:{server.port}: {type(exc).__name__}")
                logger.warning("directory server %s:%s failed: %s", server.host, server.port, exc)
                continue
            self._mark_up(index)
            return connection
        raise DirectoryUnavailableError("no directory server responded (" + "; ".join(failures) + ")")

    def _server_order(self) -> list[int]:
        with self._lock:
            count = len(self._servers)
            start = 0
            if self.config.pool_strategy == "round_robin":
                start = self._next_start
                self._next_start = (self._next_start + 1) % count
            order = [(start + offset) % count for offset in range(count)]
            now = time.monotonic()
            healthy = [index for index in order if self._down_until.get(index, 0) <= now]
            return healthy + [index for index in order if index not in healthy]

    def _mark_down(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = time.monotonic() + DOWN_SECONDS

    def _mark_up(self, index: int) -> None:
        with self._lock:
            self._down_until.pop(index, None)


def _server(url: str, config: LdapConfig) -> Server:
    use_ssl = url.startswith("ldaps://")
    tls = None
    if use_ssl or config.start_tls:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=str(config.ca_file) if config.ca_file else None,
        )
    # get_info=NONE: the schema and root DSE are not needed, and reading them costs a round trip.
    return Server(url, use_ssl=use_ssl, tls=tls, get_info=NONE,
                  connect_timeout=config.connect_timeout_seconds)


def _bind_service(connection: Connection) -> bool:
    # Without a bind DN the service connection searches anonymously.
    if connection.user is None:
        return True
    return connection.bind()


def _search(
    connection: Connection, base: str, search_filter: str, attributes: list[str], *, size_limit: int
) -> list[tuple[str, dict[str, list]]]:
    """Return (dn, attributes) of the entries found; referrals are ignored."""
    connection.search(
        base, search_filter, search_scope=SUBTREE, attributes=attributes or ["1.1"],
        size_limit=size_limit,
    )
    result = connection.result or {}
    # 0 success, 4 sizeLimitExceeded (the entries up to the limit come back), 32 noSuchObject.
    if result.get("result") not in (0, 4, 32):
        logger.error("directory search under %s failed: %s", base, result.get("description"))
        raise DirectoryUnavailableError(f"directory search failed: {result.get('description')}")
    return [
        (item["dn"], dict(item.get("attributes") or {}))
        for item in connection.response or []
        if item.get("type") == "searchResEntry"
    ]


def _first(value: object) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value) if value else None


def _unbind_quietly(connection: Connection) -> None:
    try:
        connection.unbind()
    except (LDAPExceptionError, OSError):
        logger.debug("ignored an error while closing a directory connection", exc_info=True)
