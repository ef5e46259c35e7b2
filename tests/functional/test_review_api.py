"""The review JSON API, dashboard forms and `mirror review` CLI over real HTTP on 127.0.0.1.

The data comes from the real cycle: a local upstream with two versions
of `tool` and one `other`, synced, validated and published by the CLI
into `approval: manual` channels, with local users for sign-in.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mirror.catalog.models import AuditEvent, ChannelMembership, MembershipState
from mirror.config.load import load_config
from mirror.demo.packages import PackageSpec
from mirror.server.app import start_server
from mirror.server.openapi import openapi_document
from tests.functional.helpers import Mirror, build_upstream
from tests.support.fake_upstream import FakeUpstream

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CHECKS = "[integrity, archive, metadata, paths, scripts, licence, vulnerabilities, malware]"
USERS = {
    "rev1": ("rev1-pass", ["reviewer"]),
    "rev2": ("rev2-pass", ["reviewer"]),
    "reader1": ("reader1-pass", ["reader:main"]),
    "admin1": ("admin1-pass", ["admin"]),
}
WHITELIST = """\
- upstream: up
  channel: main
  packages: [tool, other]
- upstream: up
  channel: prod
  packages: ["tool 1.1.*"]
"""
CHANNELS = f"""\
  main: {{approval: manual, checks: {CHECKS}}}
  prod: {{approval: manual, approvals_required: 2, checks: {CHECKS}}}
"""


def review_specs() -> list[PackageSpec]:
    """Two versions of `tool` that differ in dependencies, files, scripts and licence, and `other`."""
    return [
        PackageSpec("tool", "1.0", subdir="noarch", depends=["libx >=1"], license="MIT",
                    files={"bin/tool": b"#!/bin/sh\necho 1.0\n", "bin/.tool-post-link.sh": b"echo linked 1.0\n"},
                    executables={"bin/tool"}),
        PackageSpec("tool", "1.1", subdir="noarch", depends=["libx >=2", "newdep"], license="Apache-2.0",
                    files={"bin/tool": b"#!/bin/sh\necho 1.1 with more\n", "share/tool/extra.txt": b"extra\n",
                           "bin/.tool-post-link.sh": b"echo linked 1.1\ncurl http://example.invalid\n"},
                    executables={"bin/tool"}),
        PackageSpec("other", "2.0", subdir="noarch", files={"share/other.txt": b"other\n"}),
    ]


@dataclass
class ReviewSite:
    """A mirror after one cycle, and how to reach its server."""

    mirror: Mirror
    url: str = ""

    def ids(self, channel: str) -> dict[str, int]:
        """Return membership ids of a channel by file name."""
        return {m.artifact.filename: m.id for m in self.mirror.memberships() if m.channel == channel}

    def state(self, membership_id: int) -> MembershipState:
        return next(m.state for m in self.mirror.memberships() if m.id == membership_id)


def build_review_site(folder: Path, upstream_url: str) -> ReviewSite:
    """Write the config with local users, run the cycle, approve tool 1.0 in main by CLI and publish."""
    mirror = Mirror(folder).write(upstream_url, WHITELIST, channels=CHANNELS)
    users = "users:\n" + "".join(
        f"  {name}:\n    password_hash: '{CHEAP_HASHER.hash(password)}'\n    roles: [{', '.join(roles)}]\n"
        for name, (password, roles) in USERS.items()
    )
    (folder / "users.yaml").write_text(users)
    (folder / "users.yaml").chmod(0o600)
    with mirror.config_path.open("a") as config:
        config.write("auth:\n  enabled: true\n  users_file: users.yaml\n  cache_seconds: 0\n")

    result = mirror.cli("run")
    assert result.exit_code == 0, result.output
    site = ReviewSite(mirror)
    old = site.ids("main")["tool-1.0-0.conda"]
    approved = mirror.cli("review", "approve", str(old), "-m", "baseline version", "--as", "rev2")
    assert approved.exit_code == 0, approved.output
    published = mirror.cli("publish")
    assert published.exit_code == 0, published.output
    return site


@pytest.fixture(scope="module")
def review_upstream(tmp_path_factory):
    root = build_upstream(tmp_path_factory.mktemp("review-upstream"), review_specs(), formats=("conda",))
    with FakeUpstream(root) as server:
        yield server


@pytest.fixture(scope="module")
def built_site(tmp_path_factory, review_upstream) -> ReviewSite:
    return build_review_site(tmp_path_factory.mktemp("review-site") / "mirror", review_upstream.url)


@pytest.fixture
def site_copy(tmp_path, built_site) -> ReviewSite:
    """A private copy of the built mirror, so each test starts from the same catalog."""
    shutil.copytree(built_site.mirror.folder, tmp_path / "mirror", symlinks=True)
    return ReviewSite(Mirror(tmp_path / "mirror"))


@pytest.fixture
async def site(site_copy):
    runner, url = await start_server(load_config(site_copy.mirror.config_path))
    site_copy.url = url
    yield site_copy
    await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def auth(user: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, USERS[user][0])}


async def call(http, method: str, url: str, user: str | None = None, **kwargs) -> tuple[int, dict]:
    headers = {**(auth(user) if user else {}), **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, allow_redirects=False, **kwargs) as response:
        body = await response.json(content_type=None) if response.content_type == "application/json" else {}
        return response.status, body


async def test_queue_filters_and_pages(site, http):
    status, body = await call(http, "GET", f"{site.url}/api/review/channels/main/queue", "reader1")
    assert status == 200
    assert {row["filename"] for row in body["items"]} == {"tool-1.1-0.conda", "other-2.0-0.conda"}

    status, body = await call(http, "GET", f"{site.url}/api/review/channels/main/queue?name=to&check=scripts",
                              "rev1")
    assert status == 200
    assert [row["filename"] for row in body["items"]] == ["tool-1.1-0.conda"]
    assert body["items"][0]["checks_not_passed"][0]["check"] == "scripts"

    status, body = await call(http, "GET", f"{site.url}/api/review/channels/main/queue?state=all&page=1", "rev1")
    assert body["total"] == 3
    status, body = await call(http, "GET", f"{site.url}/api/review/channels/main/queue?state=bogus", "rev1")
    assert status == 400
    assert "unknown state" in body["error"]


async def test_package_diff_content(site, http):
    new = site.ids("main")["tool-1.1-0.conda"]
    status, detail = await call(http, "GET", f"{site.url}/api/review/packages/{new}", "rev1")
    assert status == 200
    change = detail["diff"]
    assert change["from"]["filename"] == "tool-1.0-0.conda"
    assert change["depends"] == {"added": ["libx >=2", "newdep"], "removed": ["libx >=1"]}
    assert change["licence"] == {"from": "MIT", "to": "Apache-2.0"}
    assert [f["path"] for f in change["files"]["added"]] == ["share/tool/extra.txt"]
    assert "bin/tool" in [f["path"] for f in change["files"]["changed"]]
    assert change["scripts"][0]["member"] == "bin/.tool-post-link.sh"
    assert "+curl http://example.invalid" in change["scripts"][0]["diff"]
    assert any(f["path"] == "bin/tool" and f["mode"] == "0755" for f in detail["files"]["entries"])
    assert "curl http://example.invalid" in detail["scripts"][0]["text"]


async def test_approve_reject_by_api(site, http):
    ids = site.ids("main")
    new, other = ids["tool-1.1-0.conda"], ids["other-2.0-0.conda"]

    status, body = await call(http, "POST", f"{site.url}/api/review/packages/{new}/approve", "rev1", json={})
    assert status == 409
    assert "comment is required" in body["error"]
    status, body = await call(http, "POST", f"{site.url}/api/review/packages/{new}/approve", "rev1",
                              json={"comment": "diff read"})
    assert (status, body["state"]) == (200, "approved")
    status, body = await call(http, "POST", f"{site.url}/api/review/packages/{other}/reject", "rev1",
                              json={"comment": "not needed"})
    assert (status, body["state"]) == (200, "rejected")

    assert site.state(new) == MembershipState.APPROVED
    assert site.state(other) == MembershipState.REJECTED
    events = {(e.action, e.actor, e.reason) for e in site.mirror.audit()}
    assert ("approved", "rev1", "diff read") in events
    assert ("rejected", "rev1", "not needed") in events


async def test_four_eyes_by_api(site, http):
    target = site.ids("prod")["tool-1.1-0.conda"]
    url = f"{site.url}/api/review/packages/{target}/approve"

    status, body = await call(http, "POST", url, "rev1", json={"comment": "first look"})
    assert (status, body["state"]) == (200, "passed")
    assert "1 of 2" in body["message"]
    status, body = await call(http, "POST", url, "rev1", json={"comment": "again"})
    assert status == 409
    assert "already approved" in body["error"]
    status, body = await call(http, "POST", url, "rev2", json={"comment": "second look"})
    assert (status, body["state"]) == (200, "approved")


async def test_role_denials(site, http):
    new = site.ids("main")["tool-1.1-0.conda"]
    for action in ("approve", "reject", "revoke"):
        status, _ = await call(http, "POST", f"{site.url}/api/review/packages/{new}/{action}", "reader1",
                               json={"comment": "x"})
        assert status == 403, action
    status, _ = await call(http, "POST", f"{site.url}/api/review/packages/{new}/promote", "reader1",
                           json={"comment": "x", "channel": "prod"})
    assert status == 403
    status, _ = await call(http, "POST", f"{site.url}/api/review/actions", "reader1",
                           json={"action": "approve", "ids": [new], "comment": "x"})
    assert status == 403
    assert (await call(http, "GET", f"{site.url}/api/review/audit", "rev1"))[0] == 403
    assert (await call(http, "GET", f"{site.url}/api/review/runs", "reader1"))[0] == 403
    assert (await call(http, "GET", f"{site.url}/api/review/audit", "admin1"))[0] == 200
    # A reader of main does not see prod's queue at all.
    assert (await call(http, "GET", f"{site.url}/api/review/channels/prod/queue", "reader1"))[0] == 404
    assert (await call(http, "POST", f"{site.url}/api/review/packages/{new}/approve", None,
                       json={"comment": "x"}))[0] == 401
    assert site.state(new) == MembershipState.PASSED


async def test_bulk_approve_matching(site, http):
    status, body = await call(http, "POST", f"{site.url}/api/review/channels/main/approve-matching", "rev1",
                              json={"comment": "batch", "name": "other"})
    assert status == 200
    assert body["succeeded"] == 1
    bulk = [e for e in site.mirror.audit() if e.action == "bulk_approve"]
    assert len(bulk) == 1
    assert bulk[0].details["filter"]["name"] == "other"
    assert bulk[0].details["succeeded"] == 1


async def test_revoke_and_promote(site, http):
    old = site.ids("main")["tool-1.0-0.conda"]
    status, body = await call(http, "POST", f"{site.url}/api/review/packages/{old}/promote", "rev1",
                              json={"comment": "ready for prod", "channel": "prod"})
    assert status == 200
    assert body["state"] == "pending"
    assert site.ids("prod")["tool-1.0-0.conda"] == body["id"]

    status, body = await call(http, "POST", f"{site.url}/api/review/packages/{old}/revoke", "rev1",
                              json={"comment": "found a problem"})
    assert (status, body["state"]) == (200, "passed")


async def test_blocked_package_403(site, http):
    other = "other-2.0-0.conda"
    status, body = await call(http, "GET", f"{site.url}/main/noarch/{other}", "reader1")
    assert status == 403
    assert body["reason"].startswith("passed:")
    assert f"/dashboard/packages/{site.ids('main')[other]}" in body["request"]

    status, body = await call(http, "GET", f"{site.url}/main/noarch/nothere-1.0-0.conda", "reader1")
    assert status == 403
    assert body["reason"].startswith("not whitelisted")
    assert "nothere" not in str(body)

    status, _ = await call(http, "GET", f"{site.url}/main/noarch/tool-1.0-0.conda", "reader1")
    assert status == 200


async def test_openapi_covers_routes(site, http):
    status, document = await call(http, "GET", f"{site.url}/api/openapi.json")
    assert status == 200
    assert document["openapi"] == "3.1.0"
    assert document == openapi_document()

    async with http.get(f"{site.url}/api/whoami", headers=auth("admin1")) as response:
        assert response.status == 200
    described = {re.sub(r"\{[^}]+\}", "{}", path) for path in document["paths"]}
    served = set()
    for resource in _app_routes(site):
        path = resource.rstrip("/") or "/"
        if path.startswith("/api/"):
            served.add(re.sub(r"\{[^}]+\}", "{}", path))
    assert served == described


def _app_routes(site: ReviewSite) -> list[str]:
    from mirror.server.app import create_app

    app = create_app(load_config(site.mirror.config_path))
    return [resource.canonical for resource in app.router.resources()]


async def test_session_cookie_and_csrf(site, http):
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(f"{site.url}/dashboard/channels", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/dashboard/login?next=")
        async with browser.get(f"{site.url}/dashboard/login") as response:
            page = await response.text()
        login_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        async with browser.post(f"{site.url}/dashboard/login", allow_redirects=False,
                                data={"username": "rev1", "password": "rev1-pass", "csrf_token": login_token}) as response:
            assert response.status == 303
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Lax" in cookie
            assert "Secure" not in cookie

        async with browser.get(f"{site.url}/dashboard/channels/main") as response:
            page = await response.text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        new = site.ids("main")["tool-1.1-0.conda"]

        status, body = await call(browser, "POST", f"{site.url}/api/review/packages/{new}/approve",
                                  json={"comment": "no csrf"})
        assert status == 403
        assert "CSRF" in body["error"]
        async with browser.post(f"{site.url}/dashboard/packages/{new}/approve", allow_redirects=False,
                                data={"comment": "no token"}) as response:
            assert response.status == 403
        assert site.state(new) == MembershipState.PASSED

        status, body = await call(browser, "POST", f"{site.url}/api/review/packages/{new}/approve",
                                  json={"comment": "with csrf"}, headers={"X-CSRF-Token": csrf})
        assert (status, body["state"]) == (200, "approved")


async def test_dashboard_reader_form_403(site, http):
    new = site.ids("main")["tool-1.1-0.conda"]
    async with http.post(f"{site.url}/dashboard/packages/{new}/approve", headers=auth("reader1"),
                         data={"comment": "x"}, allow_redirects=False) as response:
        assert response.status == 403
        assert "reviewer role" in await response.text()
    async with http.get(f"{site.url}/dashboard/audit", headers=auth("rev1")) as response:
        assert response.status == 403
    async with http.get(f"{site.url}/dashboard/packages/{new}", headers=auth("reader1")) as response:
        page = await response.text()
        assert response.status == 200
        assert 'action="/dashboard/packages/' not in page


def test_review_cli(site_copy):
    site = site_copy
    mirror = site.mirror
    ids = site.ids("main")

    listed = mirror.cli("review", "list", "--channel", "main")
    assert listed.exit_code == 0, listed.output
    assert "tool-1.1-0.conda" in listed.output
    assert "tool-1.0-0.conda" not in listed.output

    shown = mirror.cli("review", "show", str(ids["tool-1.1-0.conda"]))
    assert "+ depends newdep" in shown.output
    assert "+ file share/tool/extra.txt" in shown.output

    refused = mirror.cli("review", "approve", str(ids["other-2.0-0.conda"]), "-m", " ", "--as", "rev1")
    assert refused.exit_code == 1
    assert "comment is required" in refused.output

    prod = site.ids("prod")["tool-1.1-0.conda"]
    assert mirror.cli("review", "approve", str(prod), "-m", "one", "--as", "rev1").exit_code == 0
    assert site.state(prod) == MembershipState.PASSED
    assert mirror.cli("review", "approve", str(prod), "-m", "two", "--as", "rev2").exit_code == 0
    assert site.state(prod) == MembershipState.APPROVED

    rejected = mirror.cli("review", "reject", str(ids["other-2.0-0.conda"]), "-m", "unused", "--as", "rev1")
    assert rejected.exit_code == 0
    catalog = mirror.catalog()
    try:
        with catalog.session() as session:
            actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.actor == "rev1"))]
            membership = session.get(ChannelMembership, ids["other-2.0-0.conda"])
            assert membership.state == MembershipState.REJECTED
    finally:
        catalog.close()
    assert actions == ["approval_recorded", "rejected"]
