"""Schema of the scheduler, notifications, retention and logging sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mirror.config.operations import SchedulerConfig, SmtpConfig, WebhookConfig, check_scheduled_upstreams
from mirror.config.schema import MirrorConfig


def test_cron_needs_five_fields():
    with pytest.raises(ValidationError, match="five fields"):
        SchedulerConfig(cron="0 3 * *")


def test_cron_rejects_bad_value():
    with pytest.raises(ValidationError, match="invalid crontab expression"):
        SchedulerConfig(cron="0 25 * * *")


def test_unknown_timezone_rejected():
    with pytest.raises(ValidationError, match="unknown time zone"):
        SchedulerConfig(timezone="Mars/Olympus")


def test_upstream_schedule_overrides():
    settings = SchedulerConfig.model_validate(
        {"cron": "0 3 * * *", "jitter_seconds": 10, "upstreams": {"a": {"cron": "*/5 * * * *"}, "b": {"enabled": False}}}
    )
    assert settings.schedule_for("a") == ("*/5 * * * *", 10)
    assert settings.schedule_for("b") is None
    assert settings.schedule_for("c") == ("0 3 * * *", 10)


def test_webhook_secret_needs_env():
    with pytest.raises(ValidationError, match="together"):
        WebhookConfig(url="https://hooks.example.org/x", secret_header="Authorization")


def test_smtp_from_and_to_keys():
    smtp = SmtpConfig.model_validate({"host": "mail", "from": "a@example.org", "to": ["b@example.org"]})
    assert smtp.sender == "a@example.org"
    assert smtp.recipients == ["b@example.org"]


def test_scheduled_upstream_must_exist():
    config = MirrorConfig.model_validate({"upstreams": {"up": {"url": "http://127.0.0.1:9"}}, "channels": {"main": {}}})
    config = config.model_copy(update={"scheduler": SchedulerConfig(upstreams={"nope": {}})})
    assert check_scheduled_upstreams(config) == ["scheduler.upstreams.nope: unknown upstream 'nope'; use one of: up"]
