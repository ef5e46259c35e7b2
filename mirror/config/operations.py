"""Schema of the operational sections of `mirror.yaml`: scheduler, notifications, retention, logging.

The only path is `notifications.smtp.ca_bundle`, which the loader makes
absolute like every other path. Secrets are never written in the file: a webhook header value
and an SMTP password are read from the environment variables it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import ConfigDict, Field, field_validator, model_validator

from mirror.config.schema import StrictModel

if TYPE_CHECKING:
    from mirror.config.schema import MirrorConfig

NotificationEvent = Literal["run_failed", "download_failed", "validation_failed", "review_waiting"]
NOTIFICATION_EVENTS: tuple[str, ...] = ("run_failed", "download_failed", "validation_failed", "review_waiting")

HEADER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def check_cron(expression: str) -> str:
    """Reject a crontab expression that APScheduler cannot parse, naming the expected form."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a crontab expression; write five fields "
            "'minute hour day month day_of_week', such as '0 3 * * *' for 03:00 every day"
        )
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"invalid crontab expression {expression!r}: {exc}") from None
    return expression


def _check_env_name(name: str | None) -> str | None:
    if name is not None and not ENV_NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not an environment variable name; use letters, digits and '_'")
    return name


class UpstreamSchedule(StrictModel):
    """When one upstream is synced; unset fields take the scheduler's defaults."""

    cron: str | None = None
    jitter_seconds: int | None = Field(default=None, ge=0)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str | None) -> str | None:
        return None if cron is None else check_cron(cron)


class SchedulerConfig(StrictModel):
    """The scheduled syncs that `mirror service` runs, and the lease that keeps them single."""

    enabled: bool = True
    timezone: str = "UTC"
    cron: str | None = "0 3 * * *"
    jitter_seconds: int = Field(default=300, ge=0)
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    coalesce: bool = True
    lease_seconds: float = Field(default=300.0, ge=5)
    whitelist_poll_seconds: float = Field(default=5.0, gt=0)
    upstreams: dict[str, UpstreamSchedule] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str | None) -> str | None:
        return None if cron is None else check_cron(cron)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'") from None
        return timezone

    def schedule_for(self, upstream: str) -> tuple[str, int] | None:
        """Return the crontab expression and jitter of `upstream`, or None when it is not scheduled."""
        own = self.upstreams.get(upstream, UpstreamSchedule())
        cron = own.cron or self.cron
        if not own.enabled or cron is None:
            return None
        jitter = own.jitter_seconds if own.jitter_seconds is not None else self.jitter_seconds
        return cron, jitter


class WebhookConfig(StrictModel):
    """A URL that receives a JSON POST for each notification."""

    url: str
    secret_header: str | None = None
    secret_env: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    events: list[NotificationEvent] = Field(default_factory=lambda: list(NOTIFICATION_EVENTS))

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not re.match(r"^https?://", url):
            raise ValueError(f"{url!r} must start with http:// or https://")
        return url

    @field_validator("secret_header")
    @classmethod
    def _check_header(cls, header: str | None) -> str | None:
        if header is not None and not HEADER_NAME_PATTERN.match(header):
            raise ValueError(f"{header!r} is not an HTTP header name")
        return header

    @field_validator("secret_env")
    @classmethod
    def _check_env(cls, name: str | None) -> str | None:
        return _check_env_name(name)

    @model_validator(mode="after")
    def _header_with_env(self) -> WebhookConfig:
        if (self.secret_header is None) != (self.secret_env is None):
            raise ValueError("set secret_header and secret_env together: the header value is read from the variable")
        return self


class SmtpConfig(StrictModel):
    """An SMTP relay for e-mail notifications; `from` and `to` are the envelope addresses."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(alias="from")
    recipients: list[str] = Field(alias="to", min_length=1)
    starttls: bool = True
    ca_bundle: Path | None = None
    user: str | None = None
    password_env: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    events: list[NotificationEvent] = Field(default_factory=lambda: list(NOTIFICATION_EVENTS))

    @field_validator("password_env")
    @classmethod
    def _check_env(cls, name: str | None) -> str | None:
        return _check_env_name(name)

    @model_validator(mode="after")
    def _password_needs_user(self) -> SmtpConfig:
        if self.password_env and not self.user:
            raise ValueError("password_env is set but user is not; set the SMTP user name too")
        return self


class NotificationsConfig(StrictModel):
    """Destinations of failure and review notifications."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    smtp: SmtpConfig | None = None


class RetentionConfig(StrictModel):
    """How long `mirror gc` keeps blobs that nothing references any more."""

    unreferenced_blob_days: float = Field(default=30.0, ge=0)


class LoggingConfig(StrictModel):
    format: Literal["plain", "json"] = "plain"


def scheduler_settings(config: MirrorConfig) -> SchedulerConfig:
    return getattr(config, "scheduler", None) or SchedulerConfig()


def notification_settings(config: MirrorConfig) -> NotificationsConfig:
    return getattr(config, "notifications", None) or NotificationsConfig()


def retention_settings(config: MirrorConfig) -> RetentionConfig:
    return getattr(config, "retention", None) or RetentionConfig()


def logging_settings(config: MirrorConfig) -> LoggingConfig:
    return getattr(config, "logging", None) or LoggingConfig()


def check_scheduled_upstreams(config: MirrorConfig) -> list[str]:
    """Return a message for each `scheduler.upstreams` key that names no configured upstream."""
    known = ", ".join(sorted(config.upstreams))
    return [
        f"scheduler.upstreams.{name}: unknown upstream {name!r}; use one of: {known}"
        for name in scheduler_settings(config).upstreams
        if name not in config.upstreams
    ]
