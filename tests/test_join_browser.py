"""The web sign-up in real headless Chromium, in Arabic on a 390 px wide phone screen: right to left,
no JavaScript needed, every page under 30 KB, nothing fetched from elsewhere, and the one-time code
arriving by SMS through the Twilio double; an imported person's invitation link likewise. Screenshots go
to test-artifacts/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bot import texts
from bot.i18n import gettext_for
from registry import schema
from tests.browser import artifact, browser  # noqa: F401
from tests.conftest import StartBeacon
from tests.test_imports import phone
from tests.test_invitation_links import HTTP, invite, link_of

pytestmark = pytest.mark.browser

PHONE = "+218913334444"
PAGE_BUDGET = 30 * 1024


def ar(message: str) -> str:
    return gettext_for("ar", message)


class Weigher:
    """The bytes of every response the browser received, and anything asked of another host."""

    def __init__(self, page: Page) -> None:
        self.sizes: list[tuple[str, int]] = []
        self.foreign: list[str] = []
        page.on("response", self._seen)
        page.on("request", lambda r: None if r.url.startswith("http://127.0.0.1") else self.foreign.append(r.url))

    async def _seen(self, response: Any) -> None:
        try:
            self.sizes.append((response.url, len(await response.body())))
        except Exception:  # noqa: BLE001 - a redirect has no body
            self.sizes.append((response.url, 0))


async def accessible(browser: Browser, pages: dict[str, str]) -> None:  # noqa: F811
    """axe-core finds nothing on any page (run in a second browser context: the sign-up itself had no
    JavaScript, axe-core needs it)."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    page = await context.new_page()
    for name, html in pages.items():
        await page.set_content(html)
        results = await Axe().run(page)
        assert results.response["passes"], "axe-core checked nothing"
        violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                      for v in results.response["violations"]]
        assert violations == [], f"{name}: {violations}"
    await context.close()


SEEN: dict[str, str] = {}


async def check(page: Page, name: str) -> None:
    """The page is right to left, fits the screen's width and is saved as a screenshot (and kept for axe)."""
    SEEN[name] = await page.content()
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await page.get_attribute("html", "lang") == "ar"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=artifact(f"join-ar-{name}-390.png"), full_page=True)


async def test_sign_up_in_arabic_on_a_phone(start_beacon: StartBeacon, browser: Browser) -> None:  # noqa: F811
    run = await start_beacon(twilio=True, BEACON_PUBLIC_URL="http://127.0.0.1:8080")
    assert run.twilio is not None
    context = await browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False,
                                        locale="ar")
    page = await context.new_page()
    weigher = Weigher(page)
    await page.goto(str(run.client.make_url("/join")))
    await page.get_by_role("link", name="العربية").click()
    await check(page, "consent")
    await expect(page.get_by_text(ar(texts.WEB_CONSENT))).to_be_visible()
    await page.get_by_role("button", name=ar(texts.WEB_AGREE)).click()
    await check(page, "area")
    await page.get_by_label(ar(texts.WEB_AREA)).select_option("tripoli")
    await page.get_by_role("button", name=ar(texts.WEB_CONTINUE)).click()
    await check(page, "details")
    await page.get_by_label(ar(texts.LABEL_FIRST_NAME)).fill("أمينة")
    await page.get_by_label(ar(texts.LABEL_HOUSEHOLD)).fill("٣")  # Arabic-Indic digits count as digits
    await page.get_by_role("button", name=ar(texts.WEB_CONTINUE)).click()
    await check(page, "channel")
    await page.get_by_label(ar(texts.WEB_PHONE)).fill("12")
    await page.get_by_role("button", name=ar(texts.WEB_SEND_CODE)).click()
    await expect(page.get_by_role("alert")).to_have_text(ar(texts.WEB_PHONE_INVALID))  # in Arabic, typed kept
    assert await page.get_by_label(ar(texts.WEB_PHONE)).input_value() == "12"
    await page.get_by_label(ar(texts.WEB_PHONE)).fill(PHONE)
    await page.get_by_role("button", name=ar(texts.WEB_SEND_CODE)).click()
    await check(page, "code")
    await run.twilio.wait_for(lambda: bool(run.twilio and run.twilio.sent_to(PHONE)))
    [sms] = run.twilio.sent_to(PHONE)
    code = re.search(r"\d{6}", sms.body)
    assert code is not None and sms.body.startswith(ar(texts.WEB_CODE_MESSAGE).split("{")[0])
    await page.get_by_label(ar(texts.WEB_CODE_SENT)).fill(code.group(0))
    await page.get_by_role("button", name=ar(texts.WEB_CONTINUE)).click()
    await expect(page.get_by_role("status")).to_have_text(ar(texts.REGISTERED))
    await check(page, "done")
    await context.close()
    await accessible(browser, SEEN)
    assert weigher.foreign == []
    heavy = [(url, size) for url, size in weigher.sizes if size >= PAGE_BUDGET]
    assert heavy == [] and weigher.sizes
    async with run.beacon.db.read() as conn:
        person = (await conn.execute(select(schema.registrants))).one()
    assert person.consented and person.language == "ar" and person.area_id == "tripoli"
    assert person.household_size == 3
    await run.twilio.wait_for(lambda: bool(run.twilio and len(run.twilio.sent_to(PHONE)) == 2))
    assert run.twilio.sent_to(PHONE)[-1].body == ar(texts.REGISTERED)  # the welcome, by SMS, in Arabic


async def test_an_invitation_link_in_arabic_on_a_phone(start_beacon: StartBeacon, browser: Browser) -> None:  # noqa: F811
    run = await start_beacon(twilio=True, **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},ar,Tripoli\n")
    context = await browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = await context.new_page()
    weigher = Weigher(page)
    await page.goto(str(run.client.make_url(link_of(run, phone(1)))))
    await check(page, "invitation")
    await page.get_by_role("button", name=ar(texts.WEB_AGREE)).click()
    await expect(page.get_by_text(ar(texts.REGISTERED))).to_be_visible()
    await check(page, "invitation-done")
    await context.close()
    await accessible(browser, {name: SEEN[name] for name in ("invitation", "invitation-done")})
    assert weigher.foreign == [] and all(size < PAGE_BUDGET for _, size in weigher.sizes)
    async with run.beacon.db.read() as conn:
        person = (await conn.execute(select(schema.registrants))).one()
    assert person.consented and person.language == "ar"
