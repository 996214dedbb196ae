"""Polls and erasure by keypad, end to end: broadcast calls placed through the SDK to the voice double, the
TwiML walked by its phone, keys pressed like a caller, answers read back through the API and the registry."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bot.i18n import gettext_for, render
from bot.texts import (
    CHECKIN_SAFE,
    DELETE_CANCELLED,
    DELETED,
    VOICE_CHECK_IN,
    VOICE_ERASE_WHAT,
    VOICE_INVALID,
    VOICE_MENU,
    VOICE_OPTION,
    VOICE_POLL_THANKS,
)
from registry import schema
from tests.conftest import AUTH_TOKEN, Running, StartBeacon
from tests.doubles.twilio_voice import Phone, report
from tests.test_broadcasts_e2e import token, wait_counts
from tests.test_polls_e2e import POLL
from tests.test_twilio_e2e import register, say, texts
from tests.test_voice import placed, rows

EN, FR, AR, MACHINE = "+218910000011", "+218910000012", "+218910000013", "+218910000014"
LANGUAGE_KEYS = {EN: "1", FR: "2", AR: "5", MACHINE: "1"}
LANGUAGES = {EN: "en", FR: "fr", AR: "ar", MACHINE: "en"}
QUESTION = POLL["question"]


async def register_in(run: Running, number: str) -> None:
    """Registered by keypad in the caller's language (Tripoli)."""
    phone = run.phone(number)
    await phone.dial()
    for key in (LANGUAGE_KEYS[number], "1", "1"):
        await phone.press(key)
    assert gettext_for(LANGUAGES[number], VOICE_MENU) in phone.said()


def option(language: str, number: int) -> str:
    """``For <option>, press <n>.`` in ``language``."""
    label = POLL["options"][number - 1][language]  # type: ignore[index]
    return render(language, VOICE_OPTION, option=label, number=number)


async def answers(run: Running, broadcast_id: int) -> dict[str, Any]:
    async with run.beacon.db.read() as conn:
        rc, r = schema.recipients.c, schema.registrants.c
        found = (await conn.execute(select(rc.poll_answer, rc.answer).where(rc.broadcast_id == broadcast_id))).all()
        checked_in = (await conn.execute(select(r.last_check_in).where(r.last_check_in.is_not(None)))).all()
    return {"poll": sorted(a.poll_answer for a in found if a.poll_answer), "check_ins": [a.answer for a in found
                                                                                         if a.answer] + checked_in}


async def picked_up(run: Running, number: str, answered_by: str = "human") -> Phone:
    [call] = await placed(run, number, 1)
    phone = run.phone(number)
    await phone.pick_up(call, answered_by=answered_by)
    return phone


async def test_a_voice_poll_in_three_languages_is_tallied_and_never_a_check_in(start_beacon: StartBeacon,
                                                                              database_url: str) -> None:
    run = await start_beacon(voice=True, BEACON_DATABASE_URL=database_url)
    for number in (EN, FR, AR, MACHINE):
        await register_in(run, number)
    headers = await token(run)
    body = {"text": {"en": "Border news", "fr": "Nouvelles de la frontière", "ar": "أخبار الحدود"},
            "audience": {"channels": ["voice"]}, "poll": POLL}
    created = await run.client.post("/api/v1/broadcasts", json=body, headers=headers)
    assert created.status == 201, await created.text()
    poll_id = (await created.json())["id"]

    # English: the news, the question and its options; a wrong key says so and reads the options again.
    english = await picked_up(run, EN)
    said = english.said()
    assert "Border news" in said and QUESTION["en"] in said
    assert option("en", 1) in said and option("en", 3) in said  # "For yes, press 1." ... "For not sure, press 3."
    assert gettext_for("en", VOICE_CHECK_IN) not in said  # a poll-only broadcast asks no check-in
    await english.press("7")
    assert english.said().startswith(gettext_for("en", VOICE_INVALID))
    assert QUESTION["en"] in english.said() and option("en", 2) in english.said() and english.gather is not None
    await english.press("1")
    assert gettext_for("en", VOICE_POLL_THANKS) in english.said() and english.hung_up
    # French: silence reads the question once more, then 2.
    french = await picked_up(run, FR)
    assert QUESTION["fr"] in french.said() and option("fr", 1) in french.said()
    await french.wait()
    assert QUESTION["fr"] in french.said() and french.gather is not None
    await french.press("2")
    assert gettext_for("fr", VOICE_POLL_THANKS) in french.said()
    # Arabic, in the Arabic voice: 3.
    arabic = await picked_up(run, AR)
    spoken = [h for h in arabic.last if h.verb == "Say"]
    assert QUESTION["ar"] in [h.text for h in spoken] and option("ar", 3) in [h.text for h in spoken]
    assert all(h.language == "arb" for h in spoken)
    await arabic.press("3")
    assert gettext_for("ar", VOICE_POLL_THANKS) in arabic.said()
    # An answering machine hears the news once: no question, nothing stored.
    machine = await picked_up(run, MACHINE, answered_by="machine_end_beep")
    assert "Border news" in machine.said() and QUESTION["en"] not in machine.said()
    assert machine.hung_up and machine.gather is None
    await report(run.post_form, AUTH_TOKEN, run.voice.placed_to(MACHINE)[0], "completed",  # type: ignore[union-attr]
                 answered_by="machine_end_beep", duration=9)

    counts = await wait_counts(run, headers, poll_id, recipients=4)
    assert counts["poll"] == {"1": 1, "2": 1, "3": 1}
    assert "safe" not in counts and "need_help" not in counts
    assert await answers(run, poll_id) == {"poll": [1, 2, 3], "check_ins": []}
    analyst = await token(run, "analyst", "ana")
    stats = await run.client.get(f"/api/v1/stats/polls/{poll_id}?by=language", headers=analyst)
    assert stats.status == 200 and (await stats.json())["by"] == ["answer", "language"]

    # The latest alert, heard from the menu, asks the poll again: the new answer replaces the first, as by text.
    again = run.phone(EN)
    await again.dial()
    await again.press("3")
    assert "Border news" in again.said() and QUESTION["en"] in again.said()
    await again.press("3")
    assert gettext_for("en", VOICE_POLL_THANKS) in again.said()
    counts = await wait_counts(run, headers, poll_id, recipients=4)
    assert counts["poll"] == {"1": 0, "2": 1, "3": 2}
    assert await answers(run, poll_id) == {"poll": [2, 3, 3], "check_ins": []}


async def test_a_check_in_broadcast_with_a_poll_asks_the_check_in_first(start_beacon: StartBeacon) -> None:
    run = await start_beacon(voice=True)
    for number in (EN, FR):
        await register_in(run, number)
    headers = await token(run)
    body = {"text": {"en": "Storm tonight.", "fr": "Tempête ce soir."}, "check_in": True, "poll": POLL}
    both = (await (await run.client.post("/api/v1/broadcasts", json=body, headers=headers)).json())["id"]
    safe = await picked_up(run, EN)
    assert "Storm tonight." in safe.said() and gettext_for("en", VOICE_CHECK_IN) in safe.said()
    assert QUESTION["en"] not in safe.said()
    await safe.press("1")
    assert gettext_for("en", CHECKIN_SAFE) in safe.said() and QUESTION["en"] in safe.said()
    await safe.press("2")
    assert gettext_for("en", VOICE_POLL_THANKS) in safe.said() and safe.hung_up
    needy = await picked_up(run, FR)
    await needy.press("2")  # need help: the kind of help, and (as by text) not the poll
    await needy.press("1")
    assert QUESTION["fr"] not in needy.said() and needy.hung_up
    counts = await wait_counts(run, headers, both, safe=1, need_help=1)
    assert counts["poll"] == {"1": 0, "2": 1, "3": 0}
    # They may still answer it: the latest alert, from the menu, reads the poll.
    later = run.phone(FR)
    await later.dial()
    await later.press("3")
    assert "Tempête ce soir." in later.said() and QUESTION["fr"] in later.said()
    await later.press("3")
    counts = await wait_counts(run, headers, both, safe=1, need_help=1)
    assert counts["poll"] == {"1": 0, "2": 1, "3": 1}
    [case] = await rows(run, schema.cases)
    assert case.category == "medical"


TEXTER, KEEPER = "+2348010000088", "+2348010000089"


async def test_a_known_caller_erases_their_data_by_keypad(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, voice=True)
    assert run.twilio is not None
    await register(run, TEXTER)  # registered by SMS: they have a text channel
    await register(run, KEEPER)
    assert "Tripoli" in texts(await say(run, TEXTER, "MYDATA"))
    # Another key, or silence, keeps everything.
    keeper = run.phone(KEEPER)
    await keeper.dial()
    await keeper.press("4")
    assert keeper.said() == gettext_for("en", VOICE_ERASE_WHAT) and keeper.gather is not None
    await keeper.press("2")
    assert keeper.said().startswith(gettext_for("en", DELETE_CANCELLED))
    assert gettext_for("en", VOICE_MENU) in keeper.said()
    await keeper.press("4")
    await keeper.wait()
    assert keeper.said().startswith(gettext_for("en", DELETE_CANCELLED))
    assert len(await rows(run, schema.registrants)) == 2
    # Someone who only ever called is erased too, and texted nothing (they have no text channel).
    await register_in(run, EN)
    voice_only = run.phone(EN)
    await voice_only.dial()
    await voice_only.press("4")
    await voice_only.press("1")
    assert gettext_for("en", DELETED) in voice_only.said() and voice_only.hung_up
    assert len(await rows(run, schema.registrants)) == 2
    # 1 erases, exactly as DELETE and YES by text: the same erasure and audit, the same text to their phone.
    caller = run.phone(TEXTER)
    await caller.dial()
    await caller.press("4")
    await caller.press("1")
    assert gettext_for("en", DELETED) in caller.said() and caller.hung_up
    [kept] = await rows(run, schema.registrants)
    assert kept.consented and kept.area_id == "tripoli"
    erased = [a for a in await rows(run, schema.audit_log) if a.action == "registrant.erased"]
    assert len(erased) == 2 and [json.loads(a.detail) for a in erased] == [{"by": "registrant"}] * 2
    await run.twilio.wait_for(lambda: any(m.body == gettext_for("en", DELETED) for m in run.twilio.sent_to(TEXTER)))
    assert run.twilio.sent_to(EN) == []
    # MYDATA by text now finds nothing but the number it came from.
    mydata = texts(await say(run, TEXTER, "MYDATA"))
    assert "Tripoli" not in mydata and TEXTER in mydata
