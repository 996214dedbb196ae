"""Polls and CAP drafts in real headless Chromium: accessible (axe-core), light, and working without a reload.

Screenshots of the new pages at 1280 and 390 px wide are saved under test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from registry import tokens, users
from tests.browser import browser  # noqa: F401
from tests.conftest import StartBeacon
from tests.test_cap_e2e import alert, post
from tests.test_console_browser import PASSWORD, check_page, open_context, sign_in, visit

pytestmark = pytest.mark.browser

PEOPLE = {"+218920000001": "en", "+218920000002": "fr", "+218920000003": "ar"}  # the menu takes ISO codes


async def test_a_cap_draft_sent_then_a_poll_tallied_live(browser: Browser, start_beacon: StartBeacon) -> None:  # noqa: F811
    run = await start_beacon(BEACON_MIN_CELL="3")
    for phone, menu in PEOPLE.items():
        await run.converse(phone, "JOIN", menu, "1", "tripoli", "0", "0", "0", "0", "0", "0")
    feed = {"Authorization": f"Bearer {await tokens.create(run.beacon.db, 'responder', 'cap-feed')}"}
    draft = (await post(run, feed, alert("STORM-1"), 201))["broadcast_id"]
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    context, page, weigher = await open_context(browser)
    await sign_in(page, run, "amal")

    # The draft: listed, reviewed, confirmed and sent.
    await visit(page, weigher, run, "/console/broadcasts", "broadcasts-drafts")
    await expect(page.locator("#drafts")).to_contain_text("Flood warning for Tripoli")
    await page.get_by_role("link", name=f"Draft {draft}").click()
    await expect(page.locator("#recipients")).to_have_text("3")
    weigher.reset()
    await page.reload()
    await check_page(page, weigher, "draft")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_label("I checked the texts and the areas").check()
    await page.get_by_role("button", name="Send to 3 people").click()
    await expect(page).to_have_url(re.compile(rf"/console/broadcasts/{draft}$"))
    await expect(page.locator('[data-count="sent"]')).to_have_text("3", timeout=15000)

    # A poll: the form's question and options, the preview, the live tally.
    await visit(page, weigher, run, "/console/compose", "compose-poll")
    await page.get_by_role("textbox", name=re.compile("^English")).fill("Water is back at the camp.")
    await page.get_by_role("textbox", name=re.compile("^Français")).fill("L'eau est revenue au camp.")
    await page.locator("#poll summary").click()
    await page.get_by_label("Question (English)").fill("Do you have enough water?")
    await page.get_by_label("Question (Français)").fill("Avez-vous assez d'eau ?")
    for number, (en, fr) in enumerate((("yes", "oui"), ("no", "non")), 1):
        await page.get_by_label(f"Option {number} (English)").fill(en)
        await page.get_by_label(f"Option {number} (Français)").fill(fr)
    await page.get_by_label("Ask people to check in").uncheck()
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("blockquote[lang=fr]")).to_contain_text("1 oui")
    await expect(page.locator("#poll-options")).to_have_text("2 options")
    await check_page(page, weigher, "preview-poll")
    await page.get_by_role("button", name="Send to 3 people").click()
    await expect(page).to_have_url(re.compile(r"/console/broadcasts/\d+$"))
    await expect(page.locator('[data-count="sent"]')).to_have_text("3", timeout=15000)
    await expect(page.locator('[data-count="poll_1"]')).to_have_text("0")
    for phone, answer in zip(PEOPLE, ("1", "oui", "١"), strict=True):
        await run.simulate(phone, answer)
    await expect(page.locator('[data-count="poll_1"]')).to_have_text("3", timeout=15000)  # no reload
    weigher.reset()
    await page.reload()
    await check_page(page, weigher, "broadcast-poll")
    await context.close()
