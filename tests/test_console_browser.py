"""The console in real headless Chromium: a responder's whole crisis workflow, roles, CSRF, weight, accessibility.

People register and answer over SMS through the Twilio double; staff use only the browser.
Screenshots of every page at 1280 and 390 px wide are saved under test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from campaigns import reports
from registry import users
from registry.aggregates import StatsQuery
from tests.browser import artifact, browser  # noqa: F401
from tests.conftest import Running, StartBeacon
from tests.helpers import settle
from tests.test_twilio_e2e import say

pytestmark = pytest.mark.browser

PASSWORD = "lantern-harbour-42"
PEOPLE = {"+218910000001": "en", "+218910000002": "fr", "+218910000003": "ar"}  # the menu takes ISO codes
WIDTHS = (1280, 390)
PAGE_BUDGET = 200 * 1024


async def register_all(run: Running) -> None:
    for phone, language in PEOPLE.items():
        for text in ("JOIN", language, "1", "tripoli", "0", "0", "0", "0", "0", "0"):
            await say(run, phone, text)


def url(run: Running, path: str) -> str:
    return str(run.client.make_url(path))


class Weigher:
    """Bytes each page load transfers, from the browser's own view of the responses."""

    def __init__(self, page: Page) -> None:
        self.sizes: dict[str, int] = {}
        self.foreign: list[str] = []
        page.on("response", self._seen)
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else
                self.foreign.append(r.url))

    async def _seen(self, response: Any) -> None:
        try:
            self.sizes[response.url] = len(await response.body())
        except Exception:  # noqa: BLE001 - redirects have no body
            self.sizes.setdefault(response.url, 0)

    def reset(self) -> None:
        self.sizes.clear()

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


async def sign_in(page: Page, run: Running, username: str, password: str = PASSWORD) -> None:
    await page.goto(url(run, "/console/login"))
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


async def keyboard_sign_in(page: Page, username: str) -> None:
    """Sign in with the keyboard alone: Tab to the field, type, Tab, type, Enter."""
    for _ in range(12):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "username":
            break
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


async def check_page(page: Page, weigher: Weigher, name: str) -> None:
    """Accessible (axe-core finds nothing), within the weight budget, fetched nothing from elsewhere, screenshots."""
    results = await Axe().run(page)
    assert results.response["passes"], "axe-core checked nothing"
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                  for v in results.response["violations"]]
    assert violations == [], f"{name}: {violations}"
    assert weigher.total < PAGE_BUDGET, f"{name} weighs {weigher.total} bytes"
    assert weigher.foreign == []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=artifact(f"console-{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def visit(page: Page, weigher: Weigher, run: Running, path: str, name: str) -> None:
    weigher.reset()
    await page.goto(url(run, path))
    await page.wait_for_load_state("networkidle")
    await check_page(page, weigher, name)


async def open_context(browser: Browser) -> tuple[BrowserContext, Page, Weigher]:  # noqa: F811
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    return context, page, Weigher(page)


async def test_responder_sends_a_three_language_check_in_and_works_a_case(
        browser: Browser, start_beacon: StartBeacon) -> None:  # noqa: F811
    run = await start_beacon(twilio=True)
    assert run.twilio is not None
    await register_all(run)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    context, page, weigher = await open_context(browser)

    weigher.reset()
    await page.goto(url(run, "/console/login"))
    await check_page(page, weigher, "login")
    await sign_in(page, run, "amal")
    cookie = next(c for c in await context.cookies() if c["name"] == "beacon_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]
    await expect(page.locator("#total")).to_have_text("3")
    await visit(page, weigher, run, "/console/overview", "overview")

    # Compose: three languages, the live counter, the missing-language hint.
    await visit(page, weigher, run, "/console/compose", "compose-empty")
    await page.get_by_role("textbox", name=re.compile("^English")).fill("Flooding in Tripoli. Stay on high ground.")
    await expect(page.locator("#seg_en")).to_contain_text("GSM-7")
    await expect(page.locator("#missing")).to_contain_text("Français")
    await page.get_by_role("textbox", name=re.compile("^Français")).fill("Inondations à Tripoli. Restez en hauteur.")
    arabic = page.locator("#text_ar")
    await expect(arabic).to_have_attribute("dir", "rtl")
    await arabic.fill("فيضانات في طرابلس. ابقوا في الأماكن المرتفعة.")
    await expect(page.locator("#seg_ar")).to_contain_text("UCS-2")
    await expect(page.locator("#missing")).not_to_contain_text("Français")
    await page.get_by_label("Ask people to check in").check()
    await expect(page.locator("#seg_ar")).to_contain_text("2 SMS")  # the check-in question is counted too
    await page.set_viewport_size({"width": 390, "height": 900})
    await page.screenshot(path=artifact("console-compose-filled-390.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_role("button", name="Preview").click()

    # Preview: recipients by language and channel, cost, the texts as sent, right to left where needed.
    await expect(page.locator("#recipients")).to_have_text("3")
    rows = await page.locator("#by-language tbody tr").all_inner_texts()
    assert len(rows) == 3 and all("\t1\t" in row for row in rows)
    await expect(page.locator("#by-channel")).to_contain_text("SMS")
    await expect(page.locator("#cost")).to_contain_text("US$")
    bubble = page.locator("blockquote[lang=ar]")
    await expect(bubble).to_have_attribute("dir", "rtl")
    assert (await bubble.evaluate("e => getComputedStyle(e).direction")) == "rtl"
    await check_page(page, weigher, "preview")
    await page.get_by_role("button", name="Send to 3 people").click()

    # The broadcast page: tallies change without a reload as people answer by SMS.
    await expect(page).to_have_url(re.compile(r"/console/broadcasts/\d+$"))
    broadcast_id = int(page.url.rsplit("/", 1)[1])
    await expect(page.locator('[data-count="sent"]')).to_have_text("3", timeout=15000)
    received = {m.to: m.body for m in run.twilio.messages if "Tripoli" in m.body or "طرابلس" in m.body}
    assert "Inondations" in received["+218910000002"] and "فيضانات" in received["+218910000003"]
    loads = []
    page.on("load", lambda _: loads.append(1))
    await say(run, "+218910000001", "1")
    await say(run, "+218910000003", "2")
    await say(run, "+218910000003", "2")  # kind of help: shelter
    await say(run, "+218910000003", "The roof fell in, we are four")
    await expect(page.locator('[data-count="safe"]')).to_have_text("1", timeout=15000)
    await expect(page.locator('[data-count="need_help"]')).to_have_text("1", timeout=15000)
    await expect(page.locator('[data-count="no_reply"]')).to_have_text("1")
    assert loads == []  # updated in place, never reloaded
    weigher.reset()
    await page.reload()
    await check_page(page, weigher, f"broadcast-{broadcast_id}")

    # Cases: the queue, then one case with the person's details; assign, note, close.
    await visit(page, weigher, run, "/console/cases", "cases")
    await page.get_by_role("link", name=re.compile(r"Case \d+")).first.click()
    await expect(page.locator("#details")).to_have_text("The roof fell in, we are four")
    await expect(page.locator("#person")).to_contain_text("+218910000003")
    await check_page(page, weigher, "case")
    before = len(run.twilio.sent_to("+218910000003"))
    await page.get_by_role("button", name="Assign to me").click()
    await expect(page.locator("#assignee")).to_have_text("amal")
    await settle(run)
    assert len(run.twilio.sent_to("+218910000003")) == before + 1  # told the case is picked up
    await page.get_by_label("Note (seen by responders only)").fill("Shelter team on the way")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#notes")).to_contain_text("Shelter team on the way")
    await page.get_by_role("button", name="Close case").click()
    await expect(page.locator("#case-status")).to_have_text("closed")

    # A responder has no audit page; every case view was audited.
    response = await page.goto(url(run, "/console/audit"))
    assert response is not None and response.status == 403
    assert "Audit" not in await page.locator("nav").inner_text()
    async with run.beacon.db.read() as conn:
        from registry import audit

        viewed = await audit.entries(conn, action="case.viewed")
    assert viewed and all(row.actor == "user:amal" for row in viewed)

    # A form posted without its CSRF token is refused, and nothing changes.
    refused = await page.request.post(url(run, f"/console/broadcasts/{broadcast_id}/cancel"), form={})
    assert refused.status == 403
    forged = await page.request.post(url(run, f"/console/broadcasts/{broadcast_id}/cancel"),
                                     form={"csrf": "not-the-token"})
    assert forged.status == 403

    # Sign out: the session is gone, pages lead back to the sign-in form.
    await page.goto(url(run, "/console/overview"))
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to the Beacon console")).to_be_visible()
    await page.goto(url(run, "/console/cases"))
    await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    await context.close()


async def test_auditor_and_analyst_see_only_their_pages(browser: Browser, start_beacon: StartBeacon) -> None:  # noqa: F811
    run = await start_beacon(twilio=True)
    await register_all(run)
    await users.create_user(run.beacon.db, "olga", "auditor", PASSWORD)
    await users.create_user(run.beacon.db, "ravi", "analyst", PASSWORD)

    context, page, weigher = await open_context(browser)
    await page.goto(url(run, "/console/login"))
    await keyboard_sign_in(page, "olga")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")  # skip to content
    assert await page.evaluate("document.activeElement.id") == "main"
    await visit(page, weigher, run, "/console/audit", "audit")
    await page.get_by_role("button", name="Verify the whole chain").click()
    await expect(page.locator("#verdict")).to_contain_text("The chain holds")
    for path in ("/console/cases", "/console/compose", "/console/aggregates"):
        response = await page.goto(url(run, path))
        assert response is not None and response.status == 403, path
    await context.close()

    schedule = await reports.create_schedule(run.beacon.db, name="Daily by area", format="csv",
                                             query=StatsQuery(("area",)), every_hours=24, actor="admin")
    await reports.run_due(run.beacon.db, run.beacon.gazetteer, run.beacon.tables, run.beacon.settings.min_cell)
    context, page, weigher = await open_context(browser)
    await sign_in(page, run, "ravi")
    await expect(page.locator("#total")).to_have_text("withheld")  # 3 people: below the threshold of 10
    assert "+2189" not in await page.content()
    await visit(page, weigher, run, "/console/aggregates", "aggregates")
    await expect(page.locator("#stats")).to_contain_text("withheld")
    download = await page.request.get(url(run, "/console/aggregates/stats.csv?by=area&level=0"))
    live = await download.text()
    assert download.status == 200 and "#adm1+name" in live
    await expect(page.locator("#runs")).to_contain_text("Daily by area")  # the scheduled report, to fetch later
    async with page.expect_download() as fetched:
        await page.locator("#runs a").first.click()
    stored = Path(await (await fetched.value).path()).read_text(encoding="utf-8")
    assert stored.splitlines()[-3:] == live.splitlines()[-3:] and "#adm1+name" in stored
    assert schedule
    for path in ("/console/cases", "/console/audit", "/console/broadcasts"):
        response = await page.goto(url(run, path))
        assert response is not None and response.status == 403, path
    await context.close()


async def test_the_console_speaks_arabic_right_to_left(browser: Browser, start_beacon: StartBeacon) -> None:  # noqa: F811
    run = await start_beacon()
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    context, page, weigher = await open_context(browser)
    await page.goto(url(run, "/console/login?lang=ar"))
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await page.get_attribute("html", "lang") == "ar"
    await page.locator("#username").fill("amal")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("button.primary").click()
    await page.wait_for_url(re.compile("/console/overview"))
    heading = await page.locator("h1").inner_text()
    assert heading != "Overview" and re.search("[\u0600-\u06ff]", heading)
    await visit(page, weigher, run, "/console/compose", "compose-ar")
    await page.select_option("#lang-switch", "fr")
    async with page.expect_navigation():
        await page.locator("form:has(#lang-switch) button").click()
    assert await page.get_attribute("html", "dir") == "ltr"
    assert await page.locator("h1").inner_text() == "Nouvelle diffusion"
    await context.close()


async def test_many_failed_sign_ins_are_slowed_down(browser: Browser, start_beacon: StartBeacon) -> None:  # noqa: F811
    run = await start_beacon()
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    context, page, _ = await open_context(browser)
    for _ in range(5):
        await page.goto(url(run, "/console/login"))
        await page.get_by_label("Username").fill("amal")
        await page.get_by_label("Password", exact=True).fill("wrong-password-123")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("not right")
    await page.goto(url(run, "/console/login"))
    await page.get_by_label("Username").fill("amal")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)  # right, but too late
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-in attempts")
    await context.close()
