"""Family contacts are phone numbers: they are reached by SMS, or not at all, and never silently.

A Telegram-only deployment neither offers to share the check-in status with a contact nor sends to one;
a share made earlier becomes a failed outbox row (``no_family_channel``), counted in /metrics.
With a Twilio SMS sender the offer is made and the contact gets the status by SMS.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from bot import texts
from bot.i18n import gettext_for
from campaigns import family
from domain.vocabulary import ChannelKind, ProviderName
from registry import schema
from tests.conftest import Running, StartBeacon
from tests.doubles.telegram_api import message_update
from tests.helpers import REGISTERED, enrol, settle

CHAT = 582917100
PHONE = "+2348012345678"
RELATIVE = "+2348010000099"
_update_ids = itertools.count(5000)


async def telegram(run: Running, text: str, chat: int = CHAT) -> list[str]:
    """One Telegram message; the texts the bot sent to the chat meanwhile."""
    assert run.telegram is not None
    before = len(run.telegram.sent_to(chat))
    assert (await run.telegram_update(message_update(next(_update_ids), chat, text))).status == 200
    await settle(run)
    return [m["text"] for m in run.telegram.sent_to(chat)[before:]]


async def sms(run: Running, text: str, sender: str = PHONE) -> list[str]:
    """One SMS; the texts sent back to ``sender`` meanwhile."""
    assert run.twilio is not None
    before = len(run.twilio.sent_to(sender))
    assert (await run.twilio_inbound(sender, text)).status == 200
    await settle(run)
    return [m.body for m in run.twilio.sent_to(sender)[before:]]


async def outbox_rows(run: Running) -> list[Any]:
    async with run.beacon.db.read() as conn:
        return list((await conn.execute(select(schema.outbox).order_by(schema.outbox.c.id))).all())


def unreached() -> float:
    return REGISTRY.get_sample_value("beacon_family_no_channel_total") or 0.0


def en(message: str) -> str:
    return gettext_for("en", message)


async def test_telegram_only_registration_never_offers_to_share_with_the_contact(
        start_beacon: StartBeacon) -> None:
    run = await start_beacon(telegram=True)
    await telegram(run, "/start")
    await telegram(run, "1")  # English
    await telegram(run, "1")  # YES to the notice
    assert any("registered" in text for text in await telegram(run, "1"))  # the first area
    for _ in range(5):  # first name, nationality, gender, age band, household: skipped
        await telegram(run, "0")
    # the contact is kept, but nothing is asked about sharing the status with them
    assert await telegram(run, RELATIVE) == [en(texts.PROFILE_DONE), en(texts.LINK_OFFER)]
    await telegram(run, "UPDATE")
    assert await telegram(run, "8") == [en(texts.ASK_CONTACT)]
    assert await telegram(run, "+2348010000098") == [en(texts.SAVED)]
    sent = [m["text"] for m in run.telegram.sent_to(CHAT)] if run.telegram else []
    assert en(texts.ASK_SHARE_FAMILY) not in sent and en(texts.ASK_FAMILY_LANGUAGE) not in sent


async def test_telegram_only_a_share_made_earlier_fails_visibly_and_is_counted(start_beacon: StartBeacon) -> None:
    run = await start_beacon(telegram=True)
    sharing = replace(REGISTERED, first_name="Amina", family_contact=RELATIVE, share_family=True, family_language="en")
    person = await enrol(run.beacon.db, run.beacon.keys, str(CHAT), sharing, channel=ChannelKind.TELEGRAM,
                         provider=ProviderName.TELEGRAM)
    before = unreached()
    await telegram(run, "1")  # safe
    [reply, to_family] = await outbox_rows(run)
    assert (reply.channel, reply.status) == (ChannelKind.TELEGRAM, "sent")
    assert (to_family.registrant_id, to_family.channel, to_family.status, to_family.error_code) == (
        person, ChannelKind.SMS, "failed", family.NO_FAMILY_CHANNEL)
    assert to_family.address_ct is None and to_family.body_ct is None and to_family.provider_id is None
    assert unreached() == before + 1
    metrics = await (await run.client.get("/metrics")).text()
    assert "beacon_family_no_channel_total" in metrics


async def test_with_twilio_the_contact_is_offered_and_told_by_sms(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    assert run.twilio is not None
    await sms(run, "JOIN")
    await sms(run, "1")
    await sms(run, "YES")
    await sms(run, "tripoli")
    await sms(run, "Amina")
    for _ in range(4):  # nationality, gender, age band, household
        await sms(run, "0")
    assert await sms(run, RELATIVE) == [en(texts.ASK_SHARE_FAMILY)]
    assert en(texts.ASK_FAMILY_LANGUAGE) in await sms(run, "YES")
    assert await sms(run, "1") == [en(texts.PROFILE_DONE)]  # English
    before = unreached()
    await sms(run, "SAFE")
    [told] = run.twilio.sent_to(RELATIVE)
    assert "Amina" in told.body and "safe" in told.body
    rows = [r for r in await outbox_rows(run) if r.identity_id is None]
    assert [(r.channel, r.status, r.error_code) for r in rows] == [(ChannelKind.SMS, "sent", None)]
    assert unreached() == before
