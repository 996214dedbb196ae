"""Voice calls end to end: signed call webhooks into the running app, TwiML walked by the voice double's
phone, keys pressed like a caller; broadcast calls placed through the SDK to the double's Calls resource."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from beacon.logs import configure
from bot.i18n import gettext_for
from bot.texts import VOICE_MENU, VOICE_NOTICE
from registry import schema
from tests.conftest import AUTH_TOKEN, SMS_FROM, VOICE_FROM, Running, StartBeacon
from tests.doubles.twilio_api import sign
from tests.doubles.twilio_voice import PlacedCall, report
from tests.helpers import eventually
from tests.test_broadcasts_e2e import token, wait_counts
from tests.test_privacy import assert_nowhere, database_files, forms, restore_logging  # noqa: F401 - a fixture
from tests.test_twilio_e2e import register, say, texts

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


async def broadcast_status(run: Running, broadcast_id: int, status: str) -> bool:
    async with run.beacon.db.read() as conn:
        found = (await conn.execute(select(schema.broadcasts.c.status).where(schema.broadcasts.c.id == broadcast_id)))
        return found.scalar() == status


async def test_menu_check_in_need_help_opens_a_case(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    phone = run.phone(CALLER)
    await phone.dial()
    for key in ("1", "1", "2"):  # English, agree, Benghazi
        await phone.press(key)
    await phone.press("3")  # the latest alert for their area: none yet
    assert "There is no alert for your area now." in phone.said()
    headers = await token(run)
    for area, text in (("benghazi", "Water is safe to drink again."), ("misrata", "Not for Benghazi.")):
        body = {"text": {"en": text}, "audience": {"areas": [area]}}
        made = (await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json())["id"]
        await eventually(lambda made=made: broadcast_status(run, made, "sent"), what="broadcast sent")
    await phone.press("3")
    assert "Water is safe to drink again." in phone.said() and phone.gather is not None
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


# -- outbound: voice broadcasts ---------------------------------------------------------------------------------

SAFE, NEEDY, AWAY = "+218910000001", "+218910000002", "+218910000003"
TEXTER = "+2348010000077"  # a Nigerian number: English is offered first


async def register_by_phone(run: Running, number: str, area_key: str = "1") -> None:
    """English, agree, an area: a caller registered by keypad (their preferred channel is voice)."""
    phone = run.phone(number)
    await phone.dial()
    for key in ("1", "1", area_key):
        await phone.press(key)
    assert gettext_for("en", VOICE_MENU) in phone.said()


async def placed(run: Running, number: str, count: int) -> list[PlacedCall]:
    assert run.twilio is not None and run.voice is not None
    voice = run.voice
    await run.twilio.wait_for(lambda: len(voice.placed_to(number)) >= count)
    calls = voice.placed_to(number)
    # The sender records the call's SID a moment after the create; a call again replaces it on the same row.
    await eventually(lambda: outbox_has_sids(run, [calls[-1].sid]), what="call sid recorded")
    return calls


async def outbox_has_sids(run: Running, sids: list[str]) -> bool:
    async with run.beacon.db.read() as conn:
        found = set((await conn.execute(select(schema.outbox.c.provider_id))).scalars().all())
    return set(sids) <= found


async def test_a_voice_broadcast_counts_keypad_answers_with_the_texts(start_beacon: StartBeacon,
                                                                     database_url: str) -> None:
    run = await start_beacon(voice=True, BEACON_VOICE_RETRY_SECONDS="0", BEACON_VOICE_MAX_ATTEMPTS="2",
                             BEACON_DATABASE_URL=database_url)
    for number in (SAFE, NEEDY, AWAY):
        await register_by_phone(run, number)
    headers = await token(run)
    body = {"text": {"en": "Flood warning for Tripoli. Move to high ground."}, "audience": {"channels": ["voice"]},
            "check_in": True}
    preview = await (await run.client.post("/api/v1/broadcasts/preview", json=body, headers=headers)).json()
    assert preview["by_channel"] == {"voice": 3}
    [english] = preview["by_language"]
    assert english["calls"] == 3 and english["call_minutes"] == 1
    assert preview["estimated_cost_usd"] == round(3 * 1 * 0.05, 4)
    created = await run.client.post("/api/v1/broadcasts", json=body, headers=headers)
    assert created.status == 201
    broadcast_id = (await created.json())["id"]
    post = run.post_form
    # One presses 1.
    [call] = await placed(run, SAFE, 1)
    assert call.machine_detection == "DetectMessageEnd" and call.from_ == VOICE_FROM
    assert call.status_callback == run.settings.public_url + "/webhooks/twilio/voice/status"
    for status in ("initiated", "ringing"):
        assert await report(post, AUTH_TOKEN, call, status) == 200
    phone = run.phone(SAFE)
    await phone.pick_up(call)
    assert "Flood warning for Tripoli" in phone.said() and phone.gather is not None
    await phone.press("1")
    assert phone.hung_up
    await report(post, AUTH_TOKEN, call, "completed", answered_by="human", duration=31)
    # One presses 2, then the kind of help: a case opens.
    [call] = await placed(run, NEEDY, 1)
    phone = run.phone(NEEDY)
    await phone.pick_up(call)
    await phone.wait()  # silence: the message and the question again
    assert "Flood warning" in phone.said()
    await phone.press("2")
    await phone.press("1")  # medical
    await report(post, AUTH_TOKEN, call, "completed", answered_by="human", duration=45)
    # One does not answer: called again, then counted as no reply.
    [first] = await placed(run, AWAY, 1)
    await report(post, AUTH_TOKEN, first, "ringing")
    await report(post, AUTH_TOKEN, first, "no-answer")
    calls = await placed(run, AWAY, 2)
    await report(post, AUTH_TOKEN, calls[1], "busy")
    counts = await wait_counts(run, headers, broadcast_id, recipients=3, safe=1, need_help=1, no_reply=1, failed=1)
    assert counts["delivered"] == 2
    assert len(run.voice.placed_to(AWAY)) == 2  # the cap: no third call  # type: ignore[union-attr]
    [case] = await rows(run, schema.cases)
    assert (case.category, case.broadcast_id) == ("medical", broadcast_id)
    answers = {r.answer for r in await rows(run, schema.recipients)}
    assert answers == {"safe", "need_help", None}


async def test_an_answering_machine_gets_the_message_once_and_no_check_in(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    await register_by_phone(run, SAFE)
    headers = await token(run)
    body = {"text": {"en": "Curfew from 8 pm."}, "check_in": True}
    broadcast_id = (await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json())["id"]
    [call] = await placed(run, SAFE, 1)
    machine = run.phone(SAFE)
    await machine.pick_up(call, answered_by="machine_end_beep")
    assert "Curfew from 8 pm." in machine.said()
    assert machine.hung_up and machine.gather is None
    await report(run.post_form, AUTH_TOKEN, call, "completed", answered_by="machine_end_beep", duration=12)
    counts = await wait_counts(run, headers, broadcast_id, recipients=1, delivered=1)
    assert (counts["safe"], counts["need_help"], counts["no_reply"]) == (0, 0, 1)
    [row] = [r for r in await rows(run, schema.outbox) if r.broadcast_id == broadcast_id]
    assert row.error_code == "machine"


async def test_recorded_prompts_play_where_twilio_has_no_voice(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    recording = b"RIFF" + bytes(40)
    path = "/api/v1/voice/prompts/am/menu"
    responder = await token(run)
    assert (await run.client.put(path, data=recording, headers={**responder, "Content-Type": "audio/wav"})).status \
        == 403
    admin = await token(run, "admin", "adm")
    bad = await run.client.put(path, data=b"x", headers={**admin, "Content-Type": "text/plain"})
    assert bad.status == 415
    stored = await run.client.put(path, data=recording, headers={**admin, "Content-Type": "audio/wav"})
    assert stored.status == 201 and (await stored.json())["format"] == "wav"
    # An Amharic caller: the language menu's second page (9), then Amharic (8), agree, an area.
    phone = run.phone(CALLER)
    await phone.dial()
    await phone.press("9")
    # No voice and no recording for that option: it is spoken in the default language, naming Amharic itself.
    assert any(h.language == "en-US" and "አማርኛ" in h.text and "8" in h.text for h in phone.last)
    for key in ("8", "1", "1"):
        await phone.press(key)
    played = [h for h in phone.last if h.verb == "Play"]
    assert [h.text for h in played] == [run.settings.public_url + "/voice/prompts/am/menu.wav"]
    # Sentences without a recording are spoken in the default language rather than not at all.
    assert any(h.verb == "Say" and h.language == "en-US" and h.text == "You are registered." for h in phone.last)
    served = await run.client.get("/voice/prompts/am/menu.wav")
    assert served.status == 200 and await served.read() == recording
    assert (await run.client.get("/voice/prompts/am/menu.mp3")).status == 404
    assert (await run.client.get("/voice/prompts/xx/menu.wav")).status == 404


async def test_texting_calls_makes_broadcasts_call_and_texts_brings_texts_back(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, voice=True)
    assert run.twilio is not None and run.voice is not None
    await register(run, TEXTER)
    replies = await say(run, TEXTER, "calls")
    assert "we will call you" in texts(replies)
    headers = await token(run)
    body = {"text": {"en": "Storm tonight."}, "check_in": True}
    first = (await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json())["id"]
    [call] = await placed(run, TEXTER, 1)
    assert not any("Storm" in m.body for m in run.twilio.sent_to(TEXTER))
    await wait_counts(run, headers, first, recipients=1, sent=1)
    replies = await say(run, TEXTER, "TEXTS")
    assert "by text message" in texts(replies)
    [identity] = await rows(run, schema.identities)
    assert identity.preferred_channel == "sms"
    assert call.to == TEXTER


async def test_non_responders_to_a_text_broadcast_are_reminded_by_call(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, voice=True)
    assert run.twilio is not None and run.voice is not None
    await register(run, TEXTER)
    headers = await token(run)
    body = {"text": {"en": "Shelling reported."}, "check_in": True, "remind_after_minutes": 30, "call_reminders": True}
    created = await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json()
    assert created["call_reminders"] is True
    await wait_counts(run, headers, created["id"], recipients=1, sent=1)
    assert any("Shelling" in m.body for m in run.twilio.sent_to(TEXTER))  # the broadcast itself went by SMS
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.recipients).values(last_sent_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert await run.beacon.runner.send_reminders() == 1
    [call] = await placed(run, TEXTER, 1)
    phone = run.phone(TEXTER)
    await phone.pick_up(call)
    assert "Shelling reported." in phone.said()
    await phone.press("1")
    await wait_counts(run, headers, created["id"], safe=1, no_reply=0)


async def test_without_a_voice_number_people_who_chose_calls_are_texted(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)  # calls are answered, none placed: no TWILIO_VOICE_FROM
    assert run.twilio is not None
    await register_by_phone(run, TEXTER)
    headers = await token(run)
    body = {"text": {"en": "Road closed."}, "check_in": True}
    broadcast_id = (await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json())["id"]
    await wait_counts(run, headers, broadcast_id, recipients=1, sent=1)
    [message] = [m for m in run.twilio.sent_to(TEXTER) if "Road closed." in m.body]
    assert message.from_ == SMS_FROM


@pytest.mark.slow
@pytest.mark.usefixtures("restore_logging")
async def test_no_caller_number_or_keys_in_the_logs_or_the_database(
        start_beacon: StartBeacon, capfd: pytest.CaptureFixture[str]) -> None:
    configure("json", "debug")
    run = await start_beacon(voice=True, BEACON_LOG_LEVEL="debug")
    await register_by_phone(run, SAFE)
    phone = run.phone(SAFE)
    await phone.dial()
    await phone.press("2")
    await phone.press("3")
    headers = await token(run)
    await run.client.post("/api/v1/broadcasts", json={"text": {"en": "Test"}, "check_in": True}, headers=headers)
    [call] = await placed(run, SAFE, 1)
    answered = run.phone(SAFE)
    await answered.pick_up(call)
    await answered.press("1")
    await report(run.post_form, AUTH_TOKEN, call, "completed", answered_by="human", duration=20)
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert any("audit.appended" in line for line in lines)
    for line in lines:
        for form in forms(SAFE):
            assert form not in line.lower(), f"{form!r} in a log line: {line[:300]}"
        assert "digits" not in line.lower(), line[:300]
    assert_nowhere(database_files(run), [SAFE])


async def test_malformed_call_webhooks_are_refused_and_odd_urls_start_over(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    url = run.settings.public_url + "/webhooks/twilio/voice"
    params = {"From": CALLER, "To": VOICE_FROM, "Direction": "inbound"}  # no CallSid
    response = await run.client.post("/webhooks/twilio/voice", data=params,
                                     headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)})
    assert response.status == 400
    big = {"CallSid": "CA" + "2" * 32, "From": CALLER, "Digits": "1" * 70_000}
    response = await run.client.post("/webhooks/twilio/voice", data=big,
                                     headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, big)})
    assert response.status == 413
    # A URL Beacon never made (signed all the same): the call starts at the beginning, nothing breaks.
    phone = run.phone(CALLER)
    await phone.visit(url + "?at=nowhere&p=x&r=-1&b=99999999999999999999")
    assert phone.gather is not None and any(h.language == "arb" for h in phone.last)
