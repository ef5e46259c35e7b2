"""Roles from group membership: `reader` per channel, `reviewer` and `admin`.

`admin` implies `reviewer` and `reader` of every channel. Groups are
matched by normalised DN, or by name (the value of the first RDN) when
the configured entry is not a DN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from mirror.config.auth import RolesConfig

ADMIN = "admin"
REVIEWER = "reviewer"
READER_PREFIX = "reader:"


@dataclass(frozen=True)
class Group:
    """A group a user belongs to: its DN (empty for local groups) and its name."""

    dn: str
    name: str

    @classmethod
    def from_dn(cls, dn: str) -> Group:
        return cls(dn=dn, name=group_name(dn))


@dataclass(frozen=True)
class Roles:
    """What a principal may do. Admin implies reviewer and reader of every channel."""

    admin: bool = False
    reviewer: bool = False
    channels: frozenset[str] = field(default_factory=frozenset)

    def can_read(self, channel: str) -> bool:
        return self.admin or channel in self.channels

    @property
    def is_reviewer(self) -> bool:
        return self.admin or self.reviewer

    def readable(self, all_channels: Iterable[str]) -> list[str]:
        """Return the channels of `all_channels` this principal may read, sorted."""
        return sorted(name for name in all_channels if self.can_read(name))

    def limited_to(self, channels: Iterable[str]) -> Roles:
        """Return reader roles for the channels of `channels` that these roles may read."""
        return Roles(channels=frozenset(name for name in channels if self.can_read(name)))


def normalise_dn(dn: str) -> str:
    """Return a DN in a form for comparison: lowercase, no spaces around separators.

    Raises ValueError when `dn` is not a valid DN.
    """
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        raise ValueError(f"{dn!r} is not a valid DN") from None
    return ",".join(f"{attribute.lower()}={value.lower()}" for attribute, value, _ in parts)


def group_name(dn: str) -> str:
    """Return the value of the first RDN of `dn` (the `cn` of a group), unescaped."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn
    return _unescape_dn_value(parts[0][1]) if parts else dn


def _unescape_dn_value(value: str) -> str:
    # RFC 4514 escapes: a backslash before a special character or two hex digits.
    result = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and _is_hex(value[index + 1:index + 3]):
            result.append(int(value[index + 1:index + 3], 16))
            index += 3
        elif char == "\\" and index + 1 < len(value):
            result.extend(value[index + 1].encode())
            index += 2
        else:
            result.extend(char.encode())
            index += 1
    return result.decode("utf-8", errors="replace")


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


class RoleMap:
    """The `roles:` configuration, compiled for matching groups."""

    def __init__(self, config: RolesConfig):
        self._admin = _Matcher(config.admin)
        self._reviewer = _Matcher(config.reviewer)
        self._readers = {channel: _Matcher(entries) for channel, entries in config.readers.items()}

    def roles_for(self, groups: Iterable[Group], direct: Iterable[str] = ()) -> Roles:
        """Return the roles granted by `groups` plus roles named directly (`admin`, `reader:main`)."""
        groups = list(groups)
        direct = set(direct)
        channels = {
            channel for channel, matcher in self._readers.items() if matcher.matches_any(groups)
        }
        channels |= {role[len(READER_PREFIX):] for role in direct if role.startswith(READER_PREFIX)}
        return Roles(
            admin=ADMIN in direct or self._admin.matches_any(groups),
            reviewer=REVIEWER in direct or self._reviewer.matches_any(groups),
            channels=frozenset(channels),
        )


class _Matcher:
    def __init__(self, entries: Iterable[str]):
        self._dns: set[str] = set()
        self._names: set[str] = set()
        for entry in entries:
            if "=" in entry:
                self._dns.add(normalise_dn(entry))
            else:
                self._names.add(entry.casefold())

    def matches_any(self, groups: Iterable[Group]) -> bool:
        for group in groups:
            if group.name.casefold() in self._names:
                return True
            if group.dn and self._dns and _safe_normalise(group.dn) in self._dns:
                return True
        return False


def _safe_normalise(dn: str) -> str | None:
    try:
        return normalise_dn(dn)
    except ValueError:
        return None
