"""Schema of the `auth:` section of `mirror.yaml`.

With `enabled: false` (the default) the server stays open, as it was
before authentication existed. With `enabled: true` every route except
the health checks needs a user (LDAP/AD or the local users file) or a
token, and the roles below decide what each one may do.

Paths (`users_file`, `ldap.ca_file`, `ldap.bind_password_file`) stay as
written here; `mirror.config.load` makes them absolute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import Field, field_validator, model_validator

from mirror.config.schema import StrictModel

# The in-chain matching rule of Active Directory: matches a group whose member
# attribute reaches the DN through any number of nested groups.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"

_LDAP_URL = re.compile(r"^ldaps?://[^/?#\s]+/?\Z")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\Z")
_REALM = re.compile(r'^[^"\\\x00-\x1f\x7f]{1,64}\Z')


class LdapConfig(StrictModel):
    """Settings for finding users and their groups in an LDAP directory or Active Directory."""

    servers: list[str] = Field(min_length=1)
    pool_strategy: Literal["first", "round_robin"] = "first"
    start_tls: bool = False
    ca_file: Path | None = None
    bind_dn: str | None = None
    bind_password_env: str | None = None
    bind_password_file: Path | None = None
    base_dn: str
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    username_attribute: str = "uid"
    domains: list[str] = Field(default_factory=list)
    group_source: Literal["member_of", "search"] = "member_of"
    member_of_attribute: str = "memberOf"
    group_base_dn: str | None = None
    group_object_class: str = "groupOfNames"
    member_attribute: str = "member"
    nested_groups: Literal["none", "in_chain", "recursive"] = "none"
    max_nesting_depth: int = Field(default=5, ge=1, le=20)
    max_groups: int = Field(default=1000, ge=1)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # ldap3 2.9 packs this into SO_RCVTIMEO as whole seconds.
    receive_timeout_seconds: int = Field(default=10, ge=1)
    pool_size: int = Field(default=4, ge=1, le=64)

    @field_validator("servers")
    @classmethod
    def _check_servers(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if not _LDAP_URL.match(url):
                raise ValueError(
                    f"{url!r} is not an LDAP server URL; write ldap://host:389 or ldaps://host:636"
                )
        return servers

    @field_validator("user_filter")
    @classmethod
    def _check_user_filter(cls, text: str) -> str:
        if "{username}" not in text or not (text.startswith("(") and text.endswith(")")):
            raise ValueError(
                "user_filter must be a parenthesised LDAP filter containing {username}, "
                "such as (&(objectClass=inetOrgPerson)(uid={username}))"
            )
        return text

    @field_validator("username_attribute", "member_of_attribute", "group_object_class", "member_attribute")
    @classmethod
    def _check_attribute(cls, name: str) -> str:
        if not _ATTRIBUTE.match(name):
            raise ValueError(f"{name!r} is not an LDAP attribute or object class name")
        return name

    @field_validator("domains")
    @classmethod
    def _upper_domains(cls, domains: list[str]) -> list[str]:
        return [domain.upper() for domain in domains]

    @model_validator(mode="after")
    def _check_combinations(self) -> LdapConfig:
        if self.bind_password_env and self.bind_password_file:
            raise ValueError("set either bind_password_env or bind_password_file, not both")
        if self.bind_dn and not (self.bind_password_env or self.bind_password_file):
            raise ValueError(
                "bind_dn needs its password from bind_password_env or bind_password_file; "
                "the password itself never goes into mirror.yaml"
            )
        if self.start_tls and any(url.startswith("ldaps://") for url in self.servers):
            raise ValueError("start_tls applies to ldap:// servers; ldaps:// already uses TLS")
        return self


class RolesConfig(StrictModel):
    """Directory or local groups that grant each role, as group DNs or group names.

    An entry containing `=` is compared as a DN, otherwise with the value of
    the first RDN of each group (the `cn`), both case-insensitively.
    """

    admin: list[str] = Field(default_factory=list)
    reviewer: list[str] = Field(default_factory=list)
    readers: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("admin", "reviewer")
    @classmethod
    def _check_entries(cls, entries: list[str]) -> list[str]:
        return [_check_group_entry(entry) for entry in entries]

    @field_validator("readers")
    @classmethod
    def _check_reader_entries(cls, readers: dict[str, list[str]]) -> dict[str, list[str]]:
        return {channel: [_check_group_entry(entry) for entry in entries] for channel, entries in readers.items()}


def _check_group_entry(entry: str) -> str:
    if not entry.strip():
        raise ValueError("a group entry must not be empty")
    if "=" in entry:
        try:
            parse_dn(entry, strip=True)
        except LDAPInvalidDnError:
            raise ValueError(
                f"{entry!r} is not a valid group DN; write it as cn=NAME,ou=Groups,dc=example,dc=org "
                "or give the group name alone"
            ) from None
    return entry


class TokenConfig(StrictModel):
    default_expiry_days: int = Field(default=90, ge=1)
    max_expiry_days: int = Field(default=365, ge=1)

    @model_validator(mode="after")
    def _default_within_max(self) -> TokenConfig:
        if self.default_expiry_days > self.max_expiry_days:
            raise ValueError("default_expiry_days must not exceed max_expiry_days")
        return self


class LimitsConfig(StrictModel):
    """Failed sign-in attempts allowed in a sliding window before requests get 429."""

    window_seconds: float = Field(default=300.0, gt=0)
    max_failures_per_user: int = Field(default=5, ge=1)
    max_failures_per_address: int = Field(default=20, ge=1)


class AuthConfig(StrictModel):
    """The `auth:` section: who may read which channel, review and administer."""

    enabled: bool = False
    realm: str = "conda mirror"
    users_file: Path | None = None
    ldap: LdapConfig | None = None
    roles: RolesConfig = RolesConfig()
    anonymous_read: list[str] = Field(default_factory=list)
    cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    tokens: TokenConfig = TokenConfig()
    limits: LimitsConfig = LimitsConfig()

    @field_validator("realm")
    @classmethod
    def _check_realm(cls, realm: str) -> str:
        if not _REALM.match(realm):
            raise ValueError("realm must be 1 to 64 printable characters without quotes or backslashes")
        return realm

    def unknown_channels(self, channels: set[str] | dict) -> list[str]:
        """Return the channel names used by `anonymous_read` and `roles.readers` that are not configured."""
        named = set(self.anonymous_read) | set(self.roles.readers)
        return sorted(name for name in named if name not in channels)
