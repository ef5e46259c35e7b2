"""Typed schema of `mirror.yaml` and the whitelist file.

Models reject unknown keys, so a typo is reported instead of silently
ignored. Paths stay as written here; `mirror.config.load` makes them
absolute against the folder of the file that names them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SUBDIR_PATTERN = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)\Z")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_subdirs(subdirs: list[str]) -> list[str]:
    for subdir in subdirs:
        if not SUBDIR_PATTERN.match(subdir):
            raise ValueError(
                f"{subdir!r} is not a conda subdir; use names such as linux-64, osx-arm64 or noarch"
            )
    if len(set(subdirs)) != len(subdirs):
        raise ValueError("subdirs lists a subdir twice")
    return subdirs


class UpstreamConfig(StrictModel):
    """One upstream conda channel the mirror pulls from."""

    url: str
    subdirs: list[str] = Field(default_factory=lambda: ["linux-64", "noarch"], min_length=1)
    token: str | None = None
    token_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    ca_bundle: Path | None = None
    proxy: str | None = None
    verify_tls: bool = True
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=8, ge=1, le=64)
    retries: int = Field(default=4, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=60.0, ge=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not re.match(r"^(https?|file)://", url):
            raise ValueError(f"{url!r} must start with http://, https:// or file://")
        return url.rstrip("/")

    @field_validator("subdirs")
    @classmethod
    def _check_subdirs(cls, subdirs: list[str]) -> list[str]:
        return _check_subdirs(subdirs)

    @model_validator(mode="after")
    def _one_token_source(self) -> UpstreamConfig:
        if self.token and self.token_env:
            raise ValueError("set either token or token_env, not both")
        return self


Severity = Literal["none", "low", "medium", "high", "critical"]

SEVERITY_ORDER: tuple[str, ...] = ("none", "low", "medium", "high", "critical")

ALL_CHECKS: tuple[str, ...] = (
    "integrity", "archive", "metadata", "paths", "scripts", "licence",
    "vulnerabilities", "malware", "install", "consistency",
)
REQUIRED_CHECKS: tuple[str, ...] = ("integrity", "archive", "metadata")


class LicencePolicy(StrictModel):
    """Licences a channel accepts or rejects, as SPDX ids or globs such as `BSD-*`."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    missing: Literal["review", "reject", "allow"] = "review"


class VulnerabilityPolicy(StrictModel):
    """A channel's threshold for packages with known advisories."""

    max_severity: Severity = "none"
    retire: bool = True


class ChannelConfig(StrictModel):
    """One internal channel that the server publishes, and the rules for entering it."""

    approval: Literal["auto", "manual"] = "auto"
    approvals_required: int = Field(default=1, ge=1, le=5)
    description: str = ""
    formats: Literal["both", "conda", "tar.bz2"] = "both"
    checks: list[str] = Field(default_factory=lambda: list(ALL_CHECKS))
    allow_warnings: bool = False
    min_age_hours: float = Field(default=0.0, ge=0)
    licence: LicencePolicy = LicencePolicy()
    vulnerabilities: VulnerabilityPolicy = VulnerabilityPolicy()

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, checks: list[str]) -> list[str]:
        unknown = [name for name in checks if name not in ALL_CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s) {', '.join(unknown)}; known checks: {', '.join(ALL_CHECKS)}")
        missing = [name for name in REQUIRED_CHECKS if name not in checks]
        if missing:
            raise ValueError(f"checks must include {', '.join(missing)}: nothing unverified may be published")
        return checks


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class SyncConfig(StrictModel):
    """Limits that apply to every upstream during a sync."""

    checkpoint_every: int = Field(default=25, ge=1)
    partial_max_age_hours: float = Field(default=24.0, gt=0)


class PublishConfig(StrictModel):
    """Settings for changes to published channels."""

    removal_grace_seconds: float = Field(default=3600.0, ge=0)


class ValidationConfig(StrictModel):
    """Settings shared by every channel's checks."""

    workers: int | None = Field(default=None, ge=1, le=256)
    yara_rules_dir: Path | None = None
    max_unpacked_bytes: int = Field(default=8 * 1024**3, gt=0)
    max_members: int = Field(default=1_000_000, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    install_timeout_seconds: float = Field(default=300.0, gt=0)
    install_memory_mb: int = Field(default=2048, ge=64)
    isolate_network: bool = True


# These sections build on StrictModel above, so they are imported after it.
from mirror.config.auth import AuthConfig  # noqa: E402
from mirror.config.operations import (  # noqa: E402
    LoggingConfig,
    NotificationsConfig,
    RetentionConfig,
    SchedulerConfig,
)


class MirrorConfig(StrictModel):
    """The whole `mirror.yaml`, with paths already made absolute."""

    data_dir: Path = Path("data")
    database: str = "sqlite:///data/catalog.db"
    whitelist: Path = Path("whitelist.yaml")
    upstreams: dict[str, UpstreamConfig] = Field(min_length=1)
    channels: dict[str, ChannelConfig] = Field(min_length=1)
    server: ServerConfig = ServerConfig()
    sync: SyncConfig = SyncConfig()
    validation: ValidationConfig = ValidationConfig()
    publish: PublishConfig = PublishConfig()
    auth: AuthConfig = AuthConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    retention: RetentionConfig = RetentionConfig()
    logging: LoggingConfig = LoggingConfig()
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("upstreams", "channels")
    @classmethod
    def _check_names(cls, entries: dict) -> dict:
        for name in entries:
            if not NAME_PATTERN.match(name):
                raise ValueError(
                    f"{name!r} is not a valid name; use letters, digits, '.', '_' and '-' "
                    "(at most 64 characters, starting with a letter or digit)"
                )
        return entries

    @field_validator("channels")
    @classmethod
    def _reserved_channel_names(cls, channels: dict) -> dict:
        for name in channels:
            if name in RESERVED_CHANNEL_NAMES:
                raise ValueError(f"{name!r} is reserved for the server's own routes; pick another")
        return channels

    @model_validator(mode="after")
    def _scheduled_upstreams_exist(self) -> MirrorConfig:
        from mirror.config.operations import check_scheduled_upstreams

        errors = check_scheduled_upstreams(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @model_validator(mode="after")
    def _auth_channels_exist(self) -> MirrorConfig:
        unknown = self.auth.unknown_channels(self.channels)
        if unknown:
            raise ValueError(
                f"auth names unknown channel(s) {', '.join(unknown)}; define them under 'channels:' first"
            )
        return self

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def channels_dir(self) -> Path:
        return self.data_dir / "channels"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "upstream-cache"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"


RESERVED_CHANNEL_NAMES = frozenset({"t", "api", "healthz", "readyz", "metrics", "static", "dashboard"})

SpecText = Annotated[str, Field(min_length=1)]


class WhitelistEntry(StrictModel):
    """One block of the whitelist: which packages of one upstream go to one channel."""

    upstream: str
    channel: str
    packages: list[SpecText] = Field(min_length=1)
    dependencies: bool = False
    exclude: list[SpecText] = Field(default_factory=list)
    subdirs: list[str] | None = None

    @field_validator("subdirs")
    @classmethod
    def _check_subdirs(cls, subdirs: list[str] | None) -> list[str] | None:
        return None if subdirs is None else _check_subdirs(subdirs)
