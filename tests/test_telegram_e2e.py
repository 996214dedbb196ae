"""Telegram end to end: a Bot API update posted to the running app -> the replies the Bot API double received.

The real app (``start_beacon(telegram=True)``) talks to tests/doubles/telegram_api.py through
python-telegram-bot; the CLI is run as a subprocess against the same double.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import sys
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.i18n import LANGUAGES, gettext_for
from campaigns import outbox
from campaigns.outbox import Draft
from channels.telegram import COMMANDS
from registry import schema
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN, Running, StartBeacon
from tests.doubles.telegram_api import TelegramDouble, callback_update, contact_update, message_update
from tests.helpers import settle

# PTB 22 itself warns, while building RetryAfter, that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

BEACON_SCRIPT = Path(sys.executable).with_name("beacon")
PUBLIC_URL = "https://beacon.example.org"
PHONE = "+447700900123"  # a GB number: English is suggested over SMS, as language_code "en" does over Telegram
_update_ids = itertools.count(1000)


# --- helpers -----------------------------------------------------------------------------------------------------


async def count(beacon: Running, table: Any, *where: Any) -> int:
    async with beacon.beacon.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


def right_to_left(text: str) -> bool:
    """Whether the first strongly directional character is right-to-left (Arabic, Hebrew ... script)."""
    for char in text:
        direction = unicodedata.bidirectional(char)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


class Chat:
    """One person in a private chat with the bot: sends updates, reads what the bot sent them."""

    def __init__(self, beacon: Running, chat_id: int, language_code: str | None = "en") -> None:
        self.beacon = beacon
        self.api = beacon.telegram
        assert self.api is not None
        self.id = chat_id
        self.language_code = language_code
        self.callback_ids: list[str] = []

    @property
    def received(self) -> list[dict[str, Any]]:
        """The sendMessage parameters the double delivered to this chat; message_id is the index + 1."""
        assert self.api is not None
        return self.api.sent_to(self.id)

    @property
    def texts(self) -> list[str]:
        return [p["text"] for p in self.received]

    async def post(self, update: dict[str, Any]) -> list[str]:
        """Post one update (expecting 200), wait until everything is sent; the texts sent meanwhile."""
        before = len(self.received)
        response = await self.beacon.telegram_update(update)
        assert response.status == 200, await response.text()
        assert await response.text() == ""  # never a Bot API method in the webhook answer
        await settle(self.beacon)
        return self.texts[before:]

    async def say(self, text: str) -> list[str]:
        return await self.post(message_update(next(_update_ids), self.id, text, self.language_code))

    def keyboard(self) -> tuple[int, list[dict[str, str]]]:
        """The message id and the inline buttons of the latest message that carried any."""
        for index in range(len(self.received) - 1, -1, -1):
            markup = self.received[index].get("reply_markup") or {}
            if "inline_keyboard" in markup:
                return index + 1, [button for row in markup["inline_keyboard"] for button in row]
        raise AssertionError("the bot sent no inline keyboard")

    async def press(self, label: str) -> list[str]:
        """Press the button whose label contains ``label`` on the latest keyboard, as Telegram would report it."""
        message_id, buttons = self.keyboard()
        matching = [b for b in buttons if label in b["text"]]
        assert len(matching) == 1, f"{label!r} in {[b['text'] for b in buttons]}"
        return await self.tap(message_id, matching[0]["callback_data"])

    async def tap(self, message_id: int, data: str) -> list[str]:
        """Press a button with callback ``data`` under the bot's message ``message_id`` (an old one too)."""
        update = callback_update(next(_update_ids), self.id, data, message_id)
        update["callback_query"]["id"] = str(secrets.randbits(63))  # opaque, as Telegram's are
        self.callback_ids.append(update["callback_query"]["id"])
        return await self.post(update)

    async def share_contact(self, phone: str, user_id: int | None) -> list[str]:
        """Share a contact card: one's own when ``user_id`` is this chat's (a private chat's id is the user's)."""
        return await self.post(contact_update(next(_update_ids), self.id, phone, user_id))

    async def register(self) -> None:
        """Register in English, in Tripoli, by typing (as over SMS)."""
        await self.say("/start")
        await self.say("1")
        await self.say("1")
        assert any("registered" in text for text in await self.say("1"))
        for _ in range(5):  # skip the optional questions
            await self.say("0")
        # the last one done, Telegram (and no phone number linked yet) offers to link the phone number
        assert await self.say("0") == [gettext_for("en", texts.PROFILE_DONE), gettext_for("en", texts.LINK_OFFER)]

    async def mydata(self) -> list[str]:
        """MYDATA's lines (the replies joined)."""
        return "\n".join(await self.say("MYDATA")).splitlines()


def yes_word(language: str) -> str:
    return gettext_for(language, texts.KEYWORDS["YES"]).split("|")[0]


async def sms(beacon: Running, text: str, phone: str = PHONE) -> list[str]:
    """One SMS from ``phone`` through the Twilio webhook; the SMS replies sent meanwhile."""
    assert beacon.twilio is not None
    before = len(beacon.twilio.sent_to(phone))
    assert (await beacon.twilio_inbound(phone, text)).status == 200
    await settle(beacon)
    return [m.body for m in beacon.twilio.sent_to(phone)[before:]]


def field(label: str, value: str) -> str:
    """One MYDATA line in English."""
    return f"{gettext_for('en', label)}: {value}"


# --- webhook ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_wrong_or_missing_secret_is_refused_and_nothing_stored(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    assert beacon.telegram is not None
    update = message_update(1, 582917001, "/start")
    for secret in ("wrong-secret", TELEGRAM_SECRET[:-1], TELEGRAM_SECRET + "x", TELEGRAM_SECRET.upper(), ""):
        response = await beacon.telegram_update(update, secret=secret)
        assert response.status == 403, secret
    response = await beacon.client.post("/webhooks/telegram", json=update)  # no header at all
    assert response.status == 403
    await settle(beacon)
    assert await count(beacon, schema.inbound) == 0
    assert await count(beacon, schema.registrants) == 0 and await count(beacon, schema.identities) == 0
    assert beacon.telegram.calls_to("sendMessage") == []
    # the same update with the right secret is stored: the counting above would have seen it
    assert (await beacon.telegram_update(update)).status == 200
    await settle(beacon)
    assert await count(beacon, schema.inbound) == 1 and beacon.telegram.sent_to(582917001)


async def test_oversized_update_is_refused(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = await beacon.client.post("/webhooks/telegram", data=body, headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert response.status == 413
    assert await count(beacon, schema.inbound) == 0


@pytest.mark.slow
async def test_replayed_update_is_acknowledged_and_processed_once(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    chat = Chat(beacon, 582917002)
    await chat.register()
    update = message_update(next(_update_ids), chat.id, "HELP")
    assert len(await chat.post(update)) == 1
    for response in [await beacon.telegram_update(update), *await asyncio.gather(
            beacon.telegram_update(update), beacon.telegram_update(update))]:
        assert response.status == 200
    await settle(beacon)
    assert chat.texts[-1] == gettext_for("en", texts.HELP).format(operator="the crisis team")
    assert chat.texts.count(chat.texts[-1]) == 1
    provider_id = f"update:{update['update_id']}"
    assert await count(beacon, schema.inbound, schema.inbound.c.provider_id == provider_id) == 1


# --- the conversation ------------------------------------------------------------------------------------------


async def test_registration_with_inline_buttons_in_arabic(start_beacon: StartBeacon, tmp_path: Path) -> None:
    beacon = await start_beacon(telegram=True)
    assert beacon.telegram is not None
    chat = Chat(beacon, 582917003)
    welcome = await chat.say("/start")
    assert welcome[0] == gettext_for("en", texts.LANGUAGE_SUGGESTED)
    _, buttons = chat.keyboard()
    assert [b["text"] for b in buttons] == list(LANGUAGES.values())

    after_language = await chat.press(LANGUAGES["ar"])
    assert len(after_language) == 2 and all(right_to_left(text) for text in after_language)
    assert after_language[1] == gettext_for("ar", texts.CONSENT_QUESTION)

    after_consent = await chat.press(yes_word("ar"))
    assert len(after_consent) == 1 and right_to_left(after_consent[0])
    assert "طرابلس" in after_consent[0]

    after_area = await chat.press("طرابلس")
    assert after_area[0] == gettext_for("ar", texts.REGISTERED)
    assert all(right_to_left(text) for text in after_area)

    # every button press was answered (the button stops spinning), exactly once
    answered = [p["callback_query_id"] for p in beacon.telegram.calls_to("answerCallbackQuery")]
    assert answered == chat.callback_ids and len(answered) == 3
    async with beacon.beacon.db.read() as conn:
        [person] = (await conn.execute(select(schema.registrants))).all()
        [consent] = (await conn.execute(select(schema.consents))).all()
        [identity] = (await conn.execute(select(schema.identities))).all()
    assert (person.language, person.area_id, person.consented) == ("ar", "tripoli", True)
    assert (consent.language, consent.channel) == ("ar", "telegram")
    assert identity.kind == "telegram" and identity.last_channel == "telegram"
    # the chat id is stored like a phone number: encrypted, found by blind index, never in clear
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("beacon.db*"))
    assert str(chat.id).encode() not in stored


@pytest.mark.slow
async def test_typed_commands_work_as_over_sms(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True, twilio=True)
    assert beacon.twilio is not None
    chat = Chat(beacon, 582917004)

    def same(replies: list[str]) -> list[str]:
        return [r.replace(f"sms: {PHONE}", "<address>").replace(f"telegram: {chat.id}", "<address>") for r in replies]

    for text in ("JOIN", "1", "YES", "Tripoli", "Amina", "HELP", "MYDATA", "UPDATE", "2", "Misrata", "DELETE"):
        over_telegram, over_sms = await chat.say(text), await sms(beacon, text)
        assert over_telegram and same(over_telegram) == same(over_sms), text
        if text in ("HELP", "MYDATA"):  # the slash form from the command menu is the same command
            assert await chat.say(f"/{text.lower()}") == over_telegram
    _, buttons = chat.keyboard()  # the confirmation offers buttons too; typing the answer works as well
    assert [b["callback_data"] for b in buttons] == ["confirm_delete:1", "confirm_delete:2"]  # named question
    assert await chat.say("yes") == await sms(beacon, "yes") == [gettext_for("en", texts.DELETED)]
    assert await count(beacon, schema.registrants) == 0 and await count(beacon, schema.identities) == 0


async def test_language_code_suggests_the_language(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    cases = ((582917005, "fr", "fr"), (582917006, "pt-br", "pt"), (582917007, "de", "en"), (582917008, None, "en"))
    for chat_id, language_code, expected in cases:
        chat = Chat(beacon, chat_id, language_code)
        welcome, menu = await chat.say("/start")
        assert welcome == gettext_for(expected, texts.LANGUAGE_SUGGESTED), language_code
        assert menu.splitlines()[0] == f"1 {LANGUAGES[expected]}"
    assert gettext_for("fr", texts.LANGUAGE_SUGGESTED) != gettext_for("en", texts.LANGUAGE_SUGGESTED)
    # the suggestion is taken with "1" and the conversation goes on in French
    french = Chat(beacon, 582917005, "fr")
    assert await french.say("1") == [gettext_for("fr", texts.NOTICE).format(operator="the crisis team", months=24),
                                     gettext_for("fr", texts.CONSENT_QUESTION)]


@pytest.mark.slow
async def test_stale_button_press_re_asks_the_current_question_and_changes_nothing(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    assert beacon.telegram is not None
    chat = Chat(beacon, 582917011)
    await chat.say("/start")
    await chat.press(LANGUAGES["en"])
    consent_message, consent_buttons = chat.keyboard()
    assert [b["callback_data"] for b in consent_buttons] == ["consent:1", "consent:2"]
    [area_question] = await chat.press(yes_word("en"))
    area_message, area_buttons = chat.keyboard()
    assert area_message == len(chat.received) and area_buttons[0]["callback_data"] == "area:1"

    async def person() -> tuple[Any, ...]:
        async with beacon.beacon.db.read() as conn:
            [row] = (await conn.execute(select(schema.registrants))).all()
        return row.step, row.context, row.consented, row.opted_out, row.area_id, row.language

    before = await person()
    step, context, consented, opted_out, area_id, language = before
    assert (step, consented, opted_out, area_id, language) == ("area", True, False, None, "en")
    # "Yes" again, and "No" (which at the consent question would erase everything), pressed under the old message
    for button in consent_buttons:
        assert await chat.tap(consent_message, button["callback_data"]) == [area_question], button
        assert chat.keyboard() == (len(chat.received), area_buttons)  # asked again, with its buttons
        assert await person() == before
        assert await count(beacon, schema.consents) == 1
    # the re-asked question is answered as usual
    assert (await chat.press(area_buttons[0]["text"]))[0] == gettext_for("en", texts.REGISTERED)
    answered = [p["callback_query_id"] for p in beacon.telegram.calls_to("answerCallbackQuery")]
    assert answered == chat.callback_ids and len(answered) == 5  # every press answered, the stale ones too


# --- sending -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_blocked_bot_marks_the_identity_unreachable_and_keeps_the_record(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    assert beacon.telegram is not None
    chat = Chat(beacon, 582917009)
    await chat.register()
    sends_before = len(beacon.telegram.calls_to("sendMessage"))
    beacon.telegram.block(chat.id)
    assert await chat.say("HELP") == []  # settled: the failure is recorded and nothing is due again
    assert len(beacon.telegram.calls_to("sendMessage")) == sends_before + 1  # tried once, never again
    async with beacon.beacon.db.read() as conn:
        [failed] = (await conn.execute(select(schema.outbox).where(schema.outbox.c.status != "sent"))).all()
        [identity] = (await conn.execute(select(schema.identities))).all()
        [person] = (await conn.execute(select(schema.registrants))).all()
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "403", 1)
    assert (identity.reachable, identity.error_code) == (False, "403")
    assert (person.id, person.area_id, person.consented) == (identity.registrant_id, "tripoli", True)


@pytest.mark.slow
async def test_rate_limited_burst_is_retried_after_retry_after_and_delivered_once(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    api = beacon.telegram
    assert api is not None
    chats = [Chat(beacon, 582917100 + n) for n in range(4)]
    api.rate_limit_next(5, retry_after=1)
    first_call = len(api.calls)
    responses = await asyncio.gather(*(
        beacon.telegram_update(message_update(next(_update_ids), chat.id, "/start")) for chat in chats))
    assert [r.status for r in responses] == [200] * 4
    await settle(beacon, timeout=10)
    welcome = gettext_for("en", texts.LANGUAGE_SUGGESTED)
    for chat in chats:  # both replies, each exactly once
        assert len(chat.texts) == 2 and welcome in chat.texts
        assert sorted(chat.texts) == sorted(chats[0].texts)
    calls = list(zip(api.calls[first_call:], api.call_times[first_call:], strict=True))
    assert len(calls) == 8 + 5  # eight messages, five of them twice
    for (method, params), refused_at in calls[:5]:
        assert method == "sendMessage"
        key = (params["chat_id"], params["text"])
        [retried_at] = [t for (_, p), t in calls[5:] if (p["chat_id"], p["text"]) == key]
        assert retried_at - refused_at >= 0.95  # not before retry_after
    async with beacon.beacon.db.read() as conn:
        rows = (await conn.execute(select(schema.outbox.c.status, schema.outbox.c.attempts))).all()
    # Every message left once; an attempt is counted per call made (a message held back behind a
    # refused one to the same chat waits without being tried).
    assert {status for status, _ in rows} == {"sent"} and len(rows) == 8
    assert sum(attempts for _, attempts in rows) == 8 + 5


@pytest.mark.slow
async def test_rate_limited_replies_keep_their_order(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    assert beacon.telegram is not None
    chat = Chat(beacon, 582917200)
    beacon.telegram.rate_limit_next(1, retry_after=1)  # the welcome is refused, the language menu is not
    await chat.say("/start")
    assert chat.texts[0] == gettext_for("en", texts.LANGUAGE_SUGGESTED)


# --- linking the phone number --------------------------------------------------------------------------------


async def identities(beacon: Running) -> list[tuple[str, int]]:
    """(kind, registrant id) of every identity, oldest first."""
    i = schema.identities.c
    async with beacon.beacon.db.read() as conn:
        return [(r.kind, r.registrant_id) for r in (await conn.execute(
            select(i.kind, i.registrant_id).order_by(i.id))).all()]


@pytest.mark.slow
async def test_profile_done_offers_a_share_my_phone_number_keyboard(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    chat = Chat(beacon, 582917012)
    await chat.register()
    done, offer = chat.received[-2:]
    assert offer["text"] == gettext_for("en", texts.LINK_OFFER)
    button = {"text": gettext_for("en", texts.CONTACT_BUTTON), "request_contact": True}
    assert offer["reply_markup"] == {"keyboard": [[button]],
                                     "one_time_keyboard": True, "resize_keyboard": True}
    assert done["text"] == gettext_for("en", texts.PROFILE_DONE)
    assert "keyboard" not in done["reply_markup"] and "inline_keyboard" not in done["reply_markup"]


@pytest.mark.slow
async def test_sharing_ones_own_contact_links_the_phone_number(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(twilio=True, telegram=True)
    assert beacon.twilio is not None
    chat = Chat(beacon, 582917013)
    await chat.register()
    [(_, registrant_id)] = await identities(beacon)
    # Telegram gives the number as digits without "+"
    assert await chat.share_contact(PHONE.removeprefix("+"), chat.id) == [gettext_for("en", texts.LINKED)]
    assert chat.received[-1]["reply_markup"] == {"remove_keyboard": True}  # the phone keyboard goes away
    assert beacon.twilio.sent_to(PHONE) == []  # linking sends nothing by SMS
    assert await identities(beacon) == [("telegram", registrant_id), ("phone", registrant_id)]

    addresses = [f"telegram: {chat.id}", f"sms: {PHONE}"]
    over_telegram = await chat.mydata()
    assert over_telegram[1:3] == addresses
    assert field(texts.LABEL_AREA, "Tripoli") in over_telegram
    # an SMS from that phone is the same person: their registration, no new one
    over_sms = "\n".join(await sms(beacon, "MYDATA")).splitlines()
    assert over_sms == over_telegram
    assert await count(beacon, schema.registrants) == 1
    assert await identities(beacon) == [("telegram", registrant_id), ("phone", registrant_id)]
    i = schema.inbound.c
    assert await count(beacon, schema.inbound, i.channel == "sms", i.registrant_id == registrant_id) == 1
    # sharing it again changes nothing
    assert await chat.share_contact(PHONE, chat.id) == [gettext_for("en", texts.LINKED)]
    assert await identities(beacon) == [("telegram", registrant_id), ("phone", registrant_id)]


@pytest.mark.slow
async def test_sharing_the_phone_of_an_sms_registration_merges_it(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(twilio=True, telegram=True)
    for text in ("JOIN", "1", "YES", "Benghazi", "Amina"):  # registered by SMS, with a first name
        await sms(beacon, text)
    for _ in range(4):
        await sms(beacon, "0")
    assert await sms(beacon, "0") == [gettext_for("en", texts.PROFILE_DONE)]  # no phone to offer over SMS
    [(_, sms_registrant)] = await identities(beacon)

    chat = Chat(beacon, 582917014)
    await chat.register()  # then on Telegram, in Tripoli
    assert await count(beacon, schema.registrants) == 2
    [telegram_registrant] = {r for kind, r in await identities(beacon) if kind == "telegram"}
    assert await chat.share_contact(PHONE.removeprefix("+"), chat.id) == [gettext_for("en", texts.LINKED)]

    # one registrant remains, the Telegram one, with the SMS number moved over
    async with beacon.beacon.db.read() as conn:
        [person] = (await conn.execute(select(schema.registrants))).all()
        [consent] = (await conn.execute(select(schema.consents))).all()
        [linked] = (await conn.execute(select(schema.audit_log).where(
            schema.audit_log.c.action == "identity.linked"))).all()
    assert (person.id, person.area_id, person.consented) == (telegram_registrant, "tripoli", True)
    assert (consent.registrant_id, consent.channel) == (telegram_registrant, "telegram")
    assert await identities(beacon) == [("phone", telegram_registrant), ("telegram", telegram_registrant)]
    assert (linked.subject, json.loads(linked.detail)) == (str(telegram_registrant), {"merged": sms_registrant})
    # the SMS registration's data is gone with it
    assert await count(beacon, schema.profile_secrets) == 0
    i = schema.inbound.c
    assert await count(beacon, schema.inbound, i.registrant_id == sms_registrant) == 0
    assert await count(beacon, schema.outbox, schema.outbox.c.registrant_id == sms_registrant) == 0

    over_sms = "\n".join(await sms(beacon, "MYDATA")).splitlines()
    assert over_sms[1:3] == [f"sms: {PHONE}", f"telegram: {chat.id}"]  # the identities, oldest first
    assert field(texts.LABEL_AREA, "Tripoli") in over_sms
    assert field(texts.LABEL_FIRST_NAME, gettext_for("en", texts.MYDATA_NONE)) in over_sms
    assert await chat.mydata() == over_sms
    assert await count(beacon, schema.registrants) == 1


@pytest.mark.slow
async def test_sharing_someone_elses_contact_links_nothing(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(twilio=True, telegram=True)
    chat = Chat(beacon, 582917015)
    await chat.register()
    [(_, registrant_id)] = await identities(beacon)
    before = await chat.mydata()
    assert [line for line in before if line.startswith(("telegram:", "sms:"))] == [f"telegram: {chat.id}"]
    # another Telegram user's card, then a card of someone not on Telegram (no user_id)
    for user_id in (chat.id + 1, None):
        assert await chat.share_contact(PHONE, user_id) == [gettext_for("en", texts.NOT_UNDERSTOOD)], user_id
        assert await identities(beacon) == [("telegram", registrant_id)]
    assert await chat.mydata() == before
    # that phone is still a stranger: an SMS from it starts a registration of its own
    assert (await sms(beacon, "JOIN"))[0] == gettext_for("en", texts.LANGUAGE_SUGGESTED)
    [telegram, phone] = await identities(beacon)
    assert telegram == ("telegram", registrant_id) and phone[0] == "phone" and phone[1] != registrant_id
    assert await count(beacon, schema.registrants) == 2


# --- the CLI -------------------------------------------------------------------------------------------------


async def run_beacon(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """``beacon ARGS`` as a subprocess with only the given Beacon/Telegram configuration."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TELEGRAM_", "TWILIO_"))}
    environ.update({"BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env})
    process = await asyncio.create_subprocess_exec(
        str(BEACON_SCRIPT), *args, env=environ, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def bot_api() -> AsyncIterator[TelegramDouble]:
    double = TelegramDouble(TELEGRAM_TOKEN)
    await double.start()
    yield double
    await double.close()


def cli_env(api: TelegramDouble, **overrides: str) -> dict[str, str]:
    return {"BEACON_PUBLIC_URL": PUBLIC_URL, "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET, "TELEGRAM_API_BASE_URL": api.base_url, **overrides}


@pytest.mark.slow
async def test_cli_sets_and_deletes_the_webhook(bot_api: TelegramDouble, tmp_path: Path) -> None:
    code, out, err = await run_beacon(tmp_path, "telegram", "set-webhook", **cli_env(bot_api))
    assert code == 0, err
    assert bot_api.calls_to("setWebhook") == [{
        "url": PUBLIC_URL + "/webhooks/telegram",
        "secret_token": TELEGRAM_SECRET,
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": False,
    }]
    assert PUBLIC_URL + "/webhooks/telegram" in out
    # the command menu, once per supported language and once as the default
    languages = [p.get("language_code") for p in bot_api.calls_to("setMyCommands")]
    assert sorted(languages, key=str) == sorted([None, *LANGUAGES], key=str)
    assert [c["command"] for c in bot_api.commands["ar"]] == [name for name, _ in COMMANDS]
    assert bot_api.commands["ar"][1]["description"] == gettext_for("ar", COMMANDS[1][1])
    assert TELEGRAM_TOKEN not in out + err and TELEGRAM_SECRET not in out + err

    code, out, err = await run_beacon(tmp_path, "telegram", "delete-webhook", **cli_env(bot_api))
    assert code == 0, err
    assert len(bot_api.calls_to("deleteWebhook")) == 1 and bot_api.webhook["url"] == ""
    assert TELEGRAM_TOKEN not in out + err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_BOT_TOKEN": "123456789:WRONG-token"}, "token"),
        ({"BEACON_PUBLIC_URL": "http://beacon.example.org"}, "https"),
        ({"TELEGRAM_WEBHOOK_SECRET": "not allowed!"}, "TELEGRAM_WEBHOOK_SECRET"),
    ],
    ids=["no-secret", "wrong-token", "plain-http", "bad-secret-characters"],
)
@pytest.mark.slow
async def test_cli_set_webhook_refuses_bad_configuration(
    bot_api: TelegramDouble, tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    code, out, err = await run_beacon(tmp_path, "telegram", "set-webhook", **cli_env(bot_api, **overrides))
    assert code != 0
    [line] = err.strip().splitlines()
    assert line.startswith("beacon: error:") and message in line
    assert "WRONG" not in out + err
    assert bot_api.calls_to("setWebhook") == []


@pytest.mark.slow
async def test_the_share_my_phone_number_button_speaks_the_persons_language(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(telegram=True)
    chat = Chat(beacon, 582917099)
    await chat.say("/start")
    await chat.say("ar")  # the language menu takes the ISO code
    await chat.say("1")  # consent
    await chat.say("tripoli")
    for _ in range(6):  # skip the optional questions
        await chat.say("0")
    offer = chat.received[-1]
    assert offer["text"] == gettext_for("ar", texts.LINK_OFFER)
    [[button]] = offer["reply_markup"]["keyboard"]
    assert button == {"text": gettext_for("ar", texts.CONTACT_BUTTON), "request_contact": True}
    assert button["text"] != gettext_for("en", texts.CONTACT_BUTTON)


@pytest.mark.parametrize(("erased", "language"), [(False, "ar"), (True, "fr")], ids=["persons-language", "default"])
async def test_a_contact_request_queued_before_labels_gets_one(
    start_beacon: StartBeacon, erased: bool, language: str
) -> None:
    """Outbox rows from before the label travelled with the message say only ``"request_contact": true``:
    the label is the person's language's, else the default language's."""
    beacon = await start_beacon(telegram=True, BEACON_DEFAULT_LANGUAGE="fr")
    chat = Chat(beacon, 582917100)
    await chat.register()
    r = schema.registrants.c
    [registrant] = [row.id for row in await rows_of(beacon, schema.registrants)]
    async with beacon.beacon.db.write() as conn:
        await conn.execute(schema.registrants.update().where(r.id == registrant).values(language="ar"))
        draft = Draft(None if erased else registrant, None, "telegram", str(chat.id), "Share?")
        row = outbox.row_values(beacon.beacon.keys.ring, draft, datetime.now(UTC))
        await conn.execute(schema.outbox.insert().values({**row, "options": {"request_contact": True}}))
    beacon.beacon.sender.wake()
    await settle(beacon)
    [[button]] = chat.received[-1]["reply_markup"]["keyboard"]
    assert (chat.texts[-1], button) == ("Share?", {"text": gettext_for(language, texts.CONTACT_BUTTON),
                                                   "request_contact": True})


async def rows_of(beacon: Running, table: Any) -> list[Any]:
    async with beacon.beacon.db.read() as conn:
        return list((await conn.execute(select(table))).all())
