"""Notifications of failed runs and packages waiting for review, by webhook and e-mail.

A webhook receives a JSON POST; an e-mail goes through an SMTP relay, with
STARTTLS when configured. Secrets (the webhook header value, the SMTP
password) are read from the environment when a notification is sent and
only ever go into the request header or the SMTP login, never into a
payload. Every line of a payload passes through `redact_text`, because
error messages from HTTP libraries can quote URLs with tokens.

Delivery failures are logged and counted in `mirror_notification_failures`;
they never fail the run that caused the notification.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp

from mirror.catalog.models import RunStatus, utcnow
from mirror.config.operations import NotificationsConfig, SmtpConfig, WebhookConfig
from mirror.ops.metrics import NOTIFICATION_FAILURES
from mirror.upstream.redact import redact_text, redact_url

logger = logging.getLogger(__name__)

MAX_ITEMS = 50
MAX_ITEM_CHARS = 500


@dataclass
class Notification:
    """One event to report: a kind from NOTIFICATION_EVENTS, a one-line title, details and item lines."""

    event: str
    title: str
    details: dict[str, Any] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)


class Notifier:
    """Send notifications to every configured webhook and SMTP relay that wants their event."""

    def __init__(self, settings: NotificationsConfig, *, environ: Mapping[str, str] | None = None, source: str | None = None):
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self.source = source or socket.gethostname()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhooks or self.settings.smtp)

    def payload(self, notification: Notification) -> dict[str, Any]:
        """Return the JSON document sent for `notification`, with every text redacted."""
        items = [redact_text(line)[:MAX_ITEM_CHARS] for line in notification.items[:MAX_ITEMS]]
        return {
            "event": notification.event,
            "title": redact_text(notification.title),
            "source": self.source,
            "time": utcnow().isoformat(timespec="seconds"),
            "details": {key: redact_text(value) if isinstance(value, str) else value for key, value in notification.details.items()},
            "items": items,
            "more_items": max(0, len(notification.items) - MAX_ITEMS),
        }

    async def send(self, notification: Notification) -> None:
        payload = self.payload(notification)
        sends = [self._post(webhook, payload) for webhook in self.settings.webhooks if notification.event in webhook.events]
        smtp = self.settings.smtp
        if smtp is not None and notification.event in smtp.events:
            sends.append(asyncio.to_thread(self._mail, smtp, payload))
        if sends:
            await asyncio.gather(*sends)

    async def _post(self, webhook: WebhookConfig, payload: dict[str, Any]) -> None:
        headers = {}
        if webhook.secret_header and webhook.secret_env:
            secret = self.environ.get(webhook.secret_env)
            if secret is None:
                logger.warning(
                    "webhook %s: environment variable %s is not set; sending without the %s header",
                    redact_url(webhook.url), webhook.secret_env, webhook.secret_header,
                )
            else:
                headers[webhook.secret_header] = secret

        timeout = aiohttp.ClientTimeout(total=webhook.timeout_seconds)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(webhook.url, json=payload, headers=headers) as response:
                    if response.status >= 300:
                        raise aiohttp.ClientResponseError(
                            response.request_info, response.history, status=response.status, message=response.reason or ""
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            NOTIFICATION_FAILURES.labels("webhook").inc()
            logger.error("webhook %s: %s notification not delivered: %s", redact_url(webhook.url), payload["event"], redact_text(str(exc)))
            return
        logger.info("webhook %s: %s notification delivered", redact_url(webhook.url), payload["event"])

    def _mail(self, smtp: SmtpConfig, payload: dict[str, Any]) -> None:
        message = _email(smtp, payload)
        password = self.environ.get(smtp.password_env) if smtp.password_env else None
        if smtp.password_env and password is None:
            logger.warning("smtp: environment variable %s is not set; sending without login", smtp.password_env)
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
                if smtp.starttls:
                    cafile = str(smtp.ca_bundle) if smtp.ca_bundle else None
                    client.starttls(context=ssl.create_default_context(cafile=cafile))
                if smtp.user and password is not None:
                    client.login(smtp.user, password)
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            NOTIFICATION_FAILURES.labels("smtp").inc()
            logger.error("smtp %s:%d: %s notification not delivered: %s", smtp.host, smtp.port, payload["event"], exc)
            return
        logger.info("smtp %s:%d: %s notification sent to %d recipient(s)", smtp.host, smtp.port, payload["event"], len(smtp.recipients))


def _email(smtp: SmtpConfig, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[mirror {payload['source']}] {payload['title']}"
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    lines = [payload["title"], ""]
    lines += [f"{key}: {value}" for key, value in payload["details"].items()]
    if payload["items"]:
        lines += ["", *(f"- {item}" for item in payload["items"])]
    if payload["more_items"]:
        lines.append(f"... and {payload['more_items']} more")
    message.set_content("\n".join(lines) + "\n")
    return message


def cycle_notifications(upstream: str, sync_report: Any | None, validation_report: Any | None, waiting: int) -> list[Notification]:
    """Return the notifications that one sync cycle of `upstream` calls for.

    `waiting` is the number of memberships that this cycle newly held for review.
    """
    notifications = []
    if sync_report is not None:
        details = {"upstream": upstream, "run_id": sync_report.run_id, "status": sync_report.status.value}
        if sync_report.status in (RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.INTERRUPTED):
            notifications.append(Notification(
                "run_failed", f"sync of {upstream} ended {sync_report.status.value}", details,
                list(sync_report.errors) + list(sync_report.failed),
            ))
        if sync_report.failed:
            notifications.append(Notification(
                "download_failed", f"{len(sync_report.failed)} download(s) from {upstream} failed", details, list(sync_report.failed),
            ))
    if validation_report is not None and validation_report.failed:
        notifications.append(Notification(
            "validation_failed", f"{len(validation_report.failed)} package(s) failed validation",
            {"upstream": upstream, "run_id": validation_report.run_id}, list(validation_report.failed),
        ))
    if waiting:
        notifications.append(Notification(
            "review_waiting", f"{waiting} package(s) wait for review", {"upstream": upstream, "waiting": waiting},
        ))
    return notifications
