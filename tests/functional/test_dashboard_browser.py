"""The review dashboard driven by Debian's Chromium through Playwright, over 127.0.0.1.

A reviewer signs in, filters the queue, opens a package, reads its diff,
approves one package and rejects another; a second reviewer completes a
four-eyes approval; a reader is refused. Screenshots of each page are
kept under `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mirror.catalog.models import MembershipState
from tests.functional.test_review_api import USERS, built_site, review_upstream, site, site_copy  # noqa: F401

pytestmark = pytest.mark.real_component

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def require_browser() -> None:
    """Skip, or fail where real components are required, without Chromium or Playwright."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed; the dashboard browser tests need both"
    if os.environ.get("MIRROR_REQUIRE_REAL_COMPONENTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser():
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def new_page(browser, base_url: str):
    context = await browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    return await context.new_page()


async def sign_in(page, user: str) -> None:
    await page.goto("/dashboard/channels")
    assert "/dashboard/login" in page.url
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", USERS[user][0])
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r".*/dashboard/channels$"))


async def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_reviewer_flow(browser, site):
    ids = site.ids("main")
    page = await new_page(browser, site.url)

    await page.goto("/dashboard/login")
    await shot(page, "01-login")
    await sign_in(page, "rev1")
    await shot(page, "02-channels")
    assert await page.locator("table.grid").inner_text() != ""

    await page.click("text=main")
    await page.fill("input[name=name]", "tool")
    await page.select_option("select[name=check]", "scripts")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(re.compile(r".*name=tool.*"))
    rows = page.locator("form table.grid tbody tr")
    assert await rows.count() == 1
    assert "tool-1.1-0.conda" in await rows.first.inner_text()
    await shot(page, "03-queue-filtered")

    await page.click("text=tool-1.1-0.conda")
    diff = page.locator("#diff")
    assert "tool-1.0-0.conda" in await diff.inner_text()
    assert "newdep" in await diff.inner_text()
    assert "Apache-2.0" in await diff.inner_text()
    assert "share/tool/extra.txt" in await diff.inner_text()
    await shot(page, "04-package-diff")

    await page.fill("form[action$='/approve'] textarea[name=comment]", "diff and scripts read")
    await page.click("form[action$='/approve'] button[type=submit]")
    await page.wait_for_selector(".flash.ok")
    assert "approved in channel main" in await page.locator(".flash").inner_text()
    await shot(page, "05-approved")
    assert site.state(ids["tool-1.1-0.conda"]) == MembershipState.APPROVED

    await page.goto(f"/dashboard/packages/{ids['other-2.0-0.conda']}")
    await page.fill("form[action$='/reject'] textarea[name=comment]", "nobody asked for it")
    await page.click("form[action$='/reject'] button[type=submit]")
    await page.wait_for_selector(".flash.ok")
    await shot(page, "06-rejected")
    assert site.state(ids["other-2.0-0.conda"]) == MembershipState.REJECTED

    await page.goto("/dashboard/runs")
    await shot(page, "07-runs")
    await page.goto("/dashboard/whitelist")
    await shot(page, "08-whitelist")
    await page.goto("/dashboard/tokens")
    await shot(page, "09-tokens")


async def test_four_eyes_two_reviewers(browser, site):
    target = site.ids("prod")["tool-1.1-0.conda"]
    first = await new_page(browser, site.url)
    await sign_in(first, "rev1")
    await first.goto(f"/dashboard/packages/{target}")
    await first.fill("form[action$='/approve'] textarea[name=comment]", "first reviewer")
    await first.click("form[action$='/approve'] button[type=submit]")
    await first.wait_for_selector(".flash.ok")
    assert "1 of 2" in await first.locator(".flash").inner_text()
    assert site.state(target) == MembershipState.PASSED

    await first.fill("form[action$='/approve'] textarea[name=comment]", "again")
    await first.click("form[action$='/approve'] button[type=submit]")
    await first.wait_for_selector(".flash.error")
    assert "already approved" in await first.locator(".flash").inner_text()
    await shot(first, "10-four-eyes-refused")

    second = await new_page(browser, site.url)
    await sign_in(second, "rev2")
    await second.goto(f"/dashboard/packages/{target}")
    await second.fill("form[action$='/approve'] textarea[name=comment]", "second reviewer")
    await second.click("form[action$='/approve'] button[type=submit]")
    await second.wait_for_selector(".flash.ok")
    await shot(second, "11-four-eyes-approved")
    assert site.state(target) == MembershipState.APPROVED


async def test_reader_denied(browser, site):
    page = await new_page(browser, site.url)
    await sign_in(page, "reader1")
    package = site.ids("main")["tool-1.1-0.conda"]
    await page.goto(f"/dashboard/packages/{package}")
    assert await page.locator("form[action$='/approve']").count() == 0
    await shot(page, "12-reader-package")

    response = await page.goto("/dashboard/audit")
    assert response.status == 403
    assert "admin role" in await page.inner_text("main")
    await shot(page, "13-reader-denied")

    # A reader who posts the form anyway (with a valid CSRF token) is refused by the route.
    await page.goto("/dashboard/channels/main?state=passed")
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    result = await page.request.post(f"/dashboard/packages/{package}/approve",
                                     form={"comment": "sneaky", "csrf_token": token}, max_redirects=0)
    assert result.status == 403
    assert site.state(package) == MembershipState.PASSED


async def test_admin_audit_search(browser, site):
    page = await new_page(browser, site.url)
    await sign_in(page, "admin1")
    await page.goto("/dashboard/audit?actor=rev2")
    text = await page.inner_text("table.grid")
    assert "baseline version" in text
    await shot(page, "14-audit")
