"""The web sign-up (/join) end to end over HTTP: the pages in order, the code through the Twilio double,
CSRF, bad input kept and explained, code expiry and attempt limits, rate limits, page weight, and the
person afterwards a registrant like any other (MYDATA by SMS)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import markupsafe
import pytest
from sqlalchemy import select, update

from beacon.logs import configure
from bot import texts
from bot.i18n import gettext_for
from registry import schema, signup_codes
from tests.conftest import Running, StartBeacon
from tests.helpers import settle
from tests.test_logs import restore_logging  # noqa: F401 - a fixture
from tests.test_privacy import forms
from tests.test_stats_api import bearer
from tests.test_twilio_e2e import say

HTTP = {"BEACON_PUBLIC_URL": "http://127.0.0.1:8080"}  # plain http: the test client sends the cookie back
PAGE_BUDGET = 30 * 1024
PHONE = "+218912345678"


def shown(language: str, message: str) -> str:
    """A catalog text as the page shows it (HTML-escaped)."""
    return str(markupsafe.escape(gettext_for(language, message)))


def hidden(html: str) -> dict[str, str]:
    """The hidden fields of the page's form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


async def post(run: Running, path: str, html: str, status: int = 200, **fields: str) -> str:
    response = await run.client.post(path, data={**hidden(html), **fields})
    body = await response.text()
    assert response.status == status, body
    assert len(body.encode()) < PAGE_BUDGET
    return body


async def to_channel_page(run: Running, path: str = "/join", language: str = "en", **details: str) -> str:
    response = await run.client.get(f"{path}?lang={language}")
    assert response.status == 200
    page = await response.text()
    page = await post(run, path, page, consent="yes")
    page = await post(run, path, page, area="tripoli")
    return await post(run, path, page, **details)


def code_in(run: Running, to: str) -> str:
    assert run.twilio is not None
    [message] = [m for m in run.twilio.sent_to(to) if "Beacon" in m.body and re.search(r"\d{6}", m.body)][-1:]
    found = re.search(r"\d{6}", message.body)
    assert found is not None
    return found.group(0)


async def test_sign_up_registers_the_number_only_after_the_code(start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(twilio=True, BEACON_DATABASE_URL=database_url, **HTTP)
    language_page = await (await run.client.get("/join")).text()
    assert len(language_page.encode()) < PAGE_BUDGET and "<script" not in language_page
    assert 'href="/join?lang=ar"' in language_page
    page = await to_channel_page(run, first_name="Amina", nationality="Nigeria", gender="female", age_band="18-29",
                                 household_size="3", family_contact="")
    page = await post(run, "/join", page, channel="sms", phone=PHONE)
    await settle(run)
    async with run.beacon.db.read() as conn:
        assert (await conn.execute(select(schema.registrants))).first() is None  # nothing stored as theirs yet
        row = (await conn.execute(select(schema.signup_codes))).one()
    code = code_in(run, PHONE)
    assert code.encode() not in row.code_hash and PHONE.encode() not in row.bidx  # hashed at rest
    done = await post(run, "/join", page, code=code, step="verify")
    assert shown("en", texts.REGISTERED) in done
    await settle(run)
    async with run.beacon.db.read() as conn:
        person = (await conn.execute(select(schema.registrants))).one()
        consent = (await conn.execute(select(schema.consents))).one()
    assert person.consented and person.area_id == "tripoli" and person.nationality == "NG"
    assert person.gender == "female" and person.age_band == "18-29" and person.household_size == 3
    assert consent.notice_version == run.beacon.service.bot.notice_version and consent.channel == "web"
    # From now on the person is a registrant like any other: MYDATA by SMS shows what the page took.
    replies = await say(run, PHONE, "MYDATA")
    assert any("Amina" in m.body and "Tripoli" in m.body for m in replies)
    again = await post(run, "/join", page, 422, code=code, step="verify")  # a used code does not work twice
    assert shown("en", texts.WEB_CODE_EXPIRED) in again


async def test_bad_input_is_explained_in_the_persons_language_and_kept(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    page = await (await run.client.get("/join?lang=fr")).text()
    page = await post(run, "/join", page, consent="yes")
    wrong_area = await post(run, "/join", page, 422, area="atlantis")
    assert shown("fr", texts.WEB_CHOOSE_AREA) in wrong_area
    page = await post(run, "/join", page, area="misrata")
    details = await post(run, "/join", page, 422, first_name="Amina", household_size="999", nationality="Narnia")
    assert shown("fr", texts.WEB_CHECK) in details
    assert 'value="Amina"' in details and 'value="Narnia"' in details and 'value="999"' in details
    page = await post(run, "/join", details, first_name="Amina", household_size="", nationality="")
    bad_phone = await post(run, "/join", page, 422, channel="sms", phone="12")
    assert shown("fr", texts.WEB_PHONE_INVALID) in bad_phone and 'value="12"' in bad_phone
    assert 'lang="fr"' in bad_phone


async def test_forms_need_the_csrf_token(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    page = await (await run.client.get("/join?lang=en")).text()
    fields = {**hidden(page), "csrf": "forged", "consent": "yes"}
    response = await run.client.post("/join", data=fields)
    assert response.status == 403
    assert shown("en", texts.WEB_FORM_EXPIRED) in await response.text()


async def test_wrong_codes_are_limited_and_codes_expire(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    page = await to_channel_page(run)
    code_page = await post(run, "/join", page, channel="sms", phone=PHONE)
    await settle(run)
    right = code_in(run, PHONE)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(signup_codes.MAX_ATTEMPTS - 1):
        answer = await post(run, "/join", code_page, 422, code=wrong, step="verify")
        assert shown("en", texts.WEB_CODE_WRONG) in answer
    last = await post(run, "/join", code_page, 422, code=wrong, step="verify")
    assert shown("en", texts.WEB_CODE_EXPIRED) in last
    assert shown("en", texts.WEB_CODE_EXPIRED) in await post(run, "/join", code_page, 422, code=right,
                                                                     step="verify")
    # A new code works until it expires.
    code_page = await post(run, "/join", code_page, step="send")
    await settle(run)
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.signup_codes).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    late = await post(run, "/join", code_page, 422, code=code_in(run, PHONE), step="verify")
    assert shown("en", texts.WEB_CODE_EXPIRED) in late
    async with run.beacon.db.read() as conn:
        assert (await conn.execute(select(schema.registrants))).first() is None


async def test_codes_are_rate_limited_per_number_and_per_client(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    page = await to_channel_page(run)
    for _ in range(signup_codes.PER_NUMBER_PER_HOUR):
        await post(run, "/join", page, channel="sms", phone=PHONE)
    refused = await post(run, "/join", page, 429, channel="sms", phone=PHONE)
    assert shown("en", texts.STATUS_TOO_MANY) in refused
    sent = signup_codes.PER_NUMBER_PER_HOUR
    n = 0
    while sent < signup_codes.PER_CLIENT_PER_HOUR:
        await post(run, "/join", page, channel="sms", phone=f"+2189123400{n:02d}")
        sent, n = sent + 1, n + 1
    await post(run, "/join", page, 429, channel="sms", phone="+218912349999")  # a new number, the same client


async def test_a_source_link_attributes_the_web_sign_up(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    admin = await bearer(run, "admin", "boss")
    created: dict[str, Any] = await (await run.client.post("/api/v1/sources", json={
        "name": "Clinic", "code": "CLN", "language": "ar", "area": "misrata"}, headers=admin)).json()
    language_page = await (await run.client.get("/join/CLN")).text()
    assert 'lang="ar" dir="rtl"' in language_page  # the source's language first
    page = await (await run.client.get("/join/CLN?lang=ar")).text()
    page = await post(run, "/join/CLN", page, consent="yes")
    assert '<option value="misrata" selected>' in page  # the source's area pre-selected
    page = await post(run, "/join/CLN", page, area="misrata")
    page = await post(run, "/join/CLN", page)
    page = await post(run, "/join/CLN", page, channel="whatsapp", phone=PHONE)
    await settle(run)
    assert run.twilio is not None
    [message] = run.twilio.sent_to("whatsapp:" + PHONE)
    code = re.search(r"\d{6}", message.body)
    assert code is not None
    await post(run, "/join/CLN", page, code=code.group(0), step="verify")
    async with run.beacon.db.read() as conn:
        person = (await conn.execute(select(schema.registrants))).one()
    assert person.source_id == created["id"] and person.language == "ar"


def telegram_message(update_id: int, chat: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": text, "chat": {"id": chat, "type": "private"},
        "from": {"id": chat, "is_bot": False, "first_name": "A", "language_code": "en"}}}


async def test_telegram_sign_up_gets_its_code_through_the_bot_link(start_beacon: StartBeacon,
                                                                   database_url: str) -> None:
    run = await start_beacon(telegram=True, BEACON_DATABASE_URL=database_url, **HTTP)
    assert run.telegram is not None
    page = await to_channel_page(run, first_name="Amina")
    page = await post(run, "/join", page, channel="telegram")
    link = re.search(r'href="https://t\.me/beacon_bot\?start=(v-en-[A-Za-z0-9_-]+)"', page)
    assert link is not None and len(link.group(1)) <= 64  # Telegram's limit for a start payload
    early = await post(run, "/join", page, 422, code="123456", step="verify")  # no chat has claimed it yet
    assert shown("en", texts.WEB_CODE_WRONG) in early
    chat = 5151
    assert (await run.telegram_update(telegram_message(1, chat, f"/start {link.group(1)}"))).status == 200
    await run.telegram.wait_for(lambda: bool(run.telegram and run.telegram.sent_to(chat)))
    [sent] = run.telegram.sent_to(chat)
    code = re.search(r"\d{6}", sent["text"])
    assert code is not None
    async with run.beacon.db.read() as conn:
        assert not (await conn.execute(select(schema.registrants.c.consented))).scalar_one()
    done = await post(run, "/join", page, code=code.group(0), step="verify")
    assert shown("en", texts.REGISTERED) in done
    async with run.beacon.db.read() as conn:
        person = (await conn.execute(select(schema.registrants))).one()
        identity = (await conn.execute(select(schema.identities))).one()
    assert person.consented and person.area_id == "tripoli" and identity.kind == "telegram"
    # From now on the chat is a registrant like any other: /mydata shows what the page took.
    await run.telegram_update(telegram_message(2, chat, "/mydata"))
    await run.telegram.wait_for(lambda: any("Amina" in m["text"] for m in run.telegram.sent_to(chat))
                                if run.telegram else False)


async def test_no_code_or_number_in_the_logs(restore_logging: None, start_beacon: StartBeacon,  # noqa: F811
                                             capfd: pytest.CaptureFixture[str]) -> None:
    configure("json", "debug")  # binds stderr now, while capfd holds it
    run = await start_beacon(twilio=True, BEACON_LOG_LEVEL="debug", **HTTP)
    page = await to_channel_page(run, first_name="Amina")
    page = await post(run, "/join", page, channel="sms", phone=PHONE)
    await settle(run)
    code = code_in(run, PHONE)
    await post(run, "/join", page, 422, code="000000" if code != "000000" else "111111", step="verify")
    await post(run, "/join", page, code=code, step="verify")
    await settle(run)
    out, err = capfd.readouterr()
    assert "signup.code_sent" in out + err  # the capture works: the sign-up was logged, as audit events
    for secret in forms(PHONE, code, "Amina"):
        assert secret not in out + err
