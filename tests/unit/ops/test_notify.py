"""Notifications delivered to a local webhook receiver and a local SMTP server."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from mirror.catalog.models import RunStatus
from mirror.config.operations import NotificationsConfig, SmtpConfig, WebhookConfig
from mirror.ops.metrics import NOTIFICATION_FAILURES
from mirror.jobs.sync import SyncReport
from mirror.ops.notify import Notification, Notifier, cycle_notifications

SECRET = "s3cr3t-header-value"


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def webhook(aiohttp_server):
    received = []

    async def receive(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}/hook", received


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def failure() -> Notification:
    return Notification(
        "download_failed", "1 download(s) from up failed", {"upstream": "up", "run_id": 7},
        ["noarch/a-1.0-0.conda: 401 from https://user:pw@up.example/t/tok123/noarch/a-1.0-0.conda"],
    )


async def test_webhook_receives_payload(webhook):
    url, received = webhook
    settings = NotificationsConfig(webhooks=[WebhookConfig(url=url, secret_header="X-Mirror-Secret", secret_env="HOOK_SECRET")])
    await Notifier(settings, environ={"HOOK_SECRET": SECRET}, source="mirror-1").send(failure())

    assert len(received) == 1
    headers, payload = received[0]
    assert headers["X-Mirror-Secret"] == SECRET
    assert payload["event"] == "download_failed"
    assert payload["source"] == "mirror-1"
    assert payload["details"] == {"upstream": "up", "run_id": 7}
    assert "tok123" not in payload["items"][0]
    assert ":pw@" not in payload["items"][0]
    assert SECRET not in str(payload)


async def test_webhook_skips_other_events(webhook):
    url, received = webhook
    settings = NotificationsConfig(webhooks=[WebhookConfig(url=url, events=["review_waiting"])])
    await Notifier(settings).send(failure())
    assert received == []


async def test_webhook_failure_not_raised(aiohttp_server):
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", fail)
    server = await aiohttp_server(app, host="127.0.0.1")
    before = NOTIFICATION_FAILURES.labels("webhook")._value.get()
    settings = NotificationsConfig(webhooks=[WebhookConfig(url=f"http://127.0.0.1:{server.port}/hook")])
    await Notifier(settings).send(failure())
    assert NOTIFICATION_FAILURES.labels("webhook")._value.get() == before + 1


async def test_smtp_receives_mail(smtp_server):
    controller, inbox = smtp_server
    smtp = SmtpConfig.model_validate(
        {"host": "127.0.0.1", "port": controller.port, "from": "mirror@example.org", "to": ["ops@example.org"], "starttls": False}
    )
    await Notifier(NotificationsConfig(smtp=smtp), source="mirror-1").send(failure())

    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.mail_from == "mirror@example.org"
    assert envelope.rcpt_tos == ["ops@example.org"]
    body = envelope.content.decode()
    assert "Subject: [mirror mirror-1] 1 download(s) from up failed" in body
    assert "noarch/a-1.0-0.conda" in body
    assert "tok123" not in body


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
async def test_smtp_starttls_login(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=tls, require_starttls=True,
        authenticator=authenticate, auth_require_tls=True,
    )
    controller.start()
    try:
        smtp = SmtpConfig.model_validate({
            "host": "127.0.0.1", "port": controller.port, "from": "mirror@example.org", "to": ["ops@example.org"],
            "ca_bundle": str(cert), "user": "mirror", "password_env": "SMTP_PASSWORD",
        })
        notifier = Notifier(NotificationsConfig(smtp=smtp), environ={"SMTP_PASSWORD": "pw-value"})
        await notifier.send(failure())
    finally:
        controller.stop()
    assert logins == [(b"mirror", b"pw-value")]
    assert len(inbox.messages) == 1
    assert b"pw-value" not in inbox.messages[0].content


def test_cycle_notifications_kinds():
    report = SyncReport(run_id=3, status=RunStatus.PARTIAL, failed=["noarch/a.conda: mismatch"])
    kinds = [n.event for n in cycle_notifications("up", report, None, waiting=2)]
    assert kinds == ["run_failed", "download_failed", "review_waiting"]


def test_cycle_notifications_quiet_on_success():
    report = SyncReport(run_id=3, status=RunStatus.SUCCESS)
    assert cycle_notifications("up", report, None, waiting=0) == []
