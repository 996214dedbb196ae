"""Voice calls end to end: signed call webhooks into the running app, TwiML walked by the voice double's
phone, keys pressed like a caller; broadcast calls placed through the SDK to the double's Calls resource."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.i18n import gettext_for
from bot.texts import VOICE_MENU, VOICE_NOTICE
from registry import schema
from tests.conftest import AUTH_TOKEN, Running, StartBeacon
from tests.doubles.twilio_api import sign

CALLER = "+218912345678"


async def rows(run: Running, table: Any) -> list[Any]:
    async with run.beacon.db.read() as conn:
        return list((await conn.execute(select(table))).all())


async def test_a_new_caller_registers_in_arabic_by_keypad(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    phone = run.phone(CALLER)
    heard = await phone.dial()
    # The language menu: each language offers itself in its own voice; Arabic is the fifth.
    assert phone.gather is not None
    arabic = [h for h in heard if h.language == "arb"]
    assert arabic and "5" in arabic[0].text and arabic[0].voice == "Polly.Zeina"
    await phone.wait()  # silence: the menu again
    assert [h.text for h in phone.last] == [h.text for h in heard]
    await phone.press("5")
    notice = phone.said()
    assert notice.startswith(gettext_for("ar", VOICE_NOTICE).split("{")[0][:10])
    assert all(h.language == "arb" for h in phone.last)
    await phone.press("7")  # not on the consent menu: said so, asked again
    assert len(phone.last) == 2
    await phone.press("1")
    assert "طرابلس" in phone.said()  # the areas, read in Arabic
    await phone.press("1")
    assert gettext_for("ar", VOICE_MENU) in phone.said()
    [registrant] = await rows(run, schema.registrants)
    assert (registrant.language, registrant.area_id, registrant.consented) == ("ar", "tripoli", True)
    [consent] = await rows(run, schema.consents)
    assert consent.channel == "voice"
    [identity] = await rows(run, schema.identities)
    assert identity.preferred_channel == "voice"
    # A known caller gets the menu in their language at once.
    again = run.phone(CALLER)
    await again.dial()
    assert gettext_for("ar", VOICE_MENU) in again.said()
    # Nothing pressed three times: goodbye, and the call ends.
    await again.wait()
    await again.wait()
    await again.wait()
    assert again.hung_up and again.gather is None


async def test_menu_check_in_need_help_opens_a_case(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    phone = run.phone(CALLER)
    await phone.dial()
    for key in ("1", "1", "2"):  # English, agree, Benghazi
        await phone.press(key)
    await phone.press("2")  # need help
    assert "medical" in phone.said()
    await phone.press("2")  # shelter
    assert phone.hung_up
    [case] = await rows(run, schema.cases)
    assert case.category == "shelter"
    [registrant] = await rows(run, schema.registrants)
    assert registrant.last_check_in == "need_help"


async def test_a_bad_signature_is_refused_and_nothing_is_stored(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    params = {"CallSid": "CA" + "1" * 32, "From": CALLER, "To": "+15005550007", "Direction": "inbound"}
    url = run.settings.public_url + "/webhooks/twilio/voice"
    bad = sign("0" * 32, url, params)
    response = await run.client.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": bad})
    assert response.status == 403
    response = await run.client.post("/webhooks/twilio/voice/status", data={**params, "CallStatus": "completed"},
                                     headers={"X-Twilio-Signature": bad})
    assert response.status == 403
    assert await rows(run, schema.inbound) == []
    assert await rows(run, schema.registrants) == []
    good = sign(AUTH_TOKEN, url, params)
    response = await run.client.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": good})
    assert response.status == 200
