"""Assisted registration: a fieldworker registers a person met in person, who then gets a text saying what was
recorded and how to see, change or delete it.

Consent is recorded as assisted: the method, the fieldworker, the time and the notice version the fieldworker
read out. A fieldworker sees only the people they registered in the last :data:`VISIBLE_FOR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import texts
from bot.i18n import gettext_for, render
from bot.mydata import describe
from bot.replies import pack
from bot.state import BotConfig, Profile, State, Step
from campaigns import outbox
from campaigns.outbox import Draft
from registry import audit, schema, store
from registry.crypto import KeyRing
from registry.keys import identity_aad, secret_aad

CONSENT_METHOD = "assisted"
VISIBLE_FOR = timedelta(hours=24)
SECRETS = ("first_name", "employer", "recruitment_agency")


class AlreadyRegistered(Exception):
    """The number is already in the registry: the person manages their data by text."""


@dataclass(frozen=True)
class Person:
    """What the fieldworker recorded."""

    phone: str  # E.164
    channel: str  # sms | whatsapp: where the confirmation goes
    language: str
    area_id: str
    first_name: str | None = None
    employer: str | None = None
    recruitment_agency: str | None = None


async def register(conn: AsyncConnection, keys: KeyRing, bot: BotConfig, person: Person, *, by: str,
                   now: datetime) -> int:
    """Register ``person`` with assisted consent and queue their confirmation, in the caller's transaction."""
    r, i = schema.registrants, schema.identities
    bidx = keys.blind_index("phone", person.phone)
    if (await conn.execute(select(i.c.id).where(i.c.bidx == bidx))).first() is not None:
        raise AlreadyRegistered()
    registrant_id = int((await conn.execute(insert(r).returning(r.c.id), {
        "language": person.language, "area_id": person.area_id, "step": Step.IDLE.value, "context": {},
        "consented": True, "opted_out": False, "created_at": now, "registered_by": by})).scalar_one())
    identity_id = int((await conn.execute(insert(i).returning(i.c.id), {
        "registrant_id": registrant_id, "kind": "phone", "bidx": bidx,
        "address_ct": keys.encrypt(person.phone, identity_aad({"bidx": bidx})), "last_channel": person.channel,
        "preferred_channel": person.channel, "reachable": True, "created_at": now, "last_used_at": now,
    })).scalar_one())
    given = {name: getattr(person, name) for name in SECRETS if getattr(person, name)}
    if given:
        await conn.execute(insert(schema.profile_secrets), [
            {"registrant_id": registrant_id, "field": name,
             "value_ct": keys.encrypt(value, secret_aad({"field": name, "registrant_id": registrant_id}))}
            for name, value in given.items()])
    await store.record_consent(conn, registrant_id, bot.notice_version, person.language, person.channel, now,
                               method=CONSENT_METHOD, recorded_by=by)
    await outbox.enqueue(conn, keys, [Draft(registrant_id, identity_id, person.channel, person.phone, text)
                                      for text in confirmation(bot, person, now)])
    await audit.append(conn, by, "assisted.registered", str(registrant_id),
                       {"channel": person.channel, "fields": sorted(["language", "area_id", *given])})
    return registrant_id


def confirmation(bot: BotConfig, person: Person, now: datetime) -> list[str]:
    """The texts the person gets: who registered them and the commands, then everything recorded (as MYDATA)."""
    language = person.language
    state = State(step=Step.IDLE, consented=True, consent_at=now, addresses=((person.channel, person.phone),),
                  profile=Profile(language=language, area_id=person.area_id, first_name=person.first_name,
                                  employer=person.employer, recruitment_agency=person.recruitment_agency))
    lines = [gettext_for(language, texts.MYDATA_HEADER), f"{person.channel}: {person.phone}"]
    lines += [f"{label}: {value}" for label, value in describe(bot, state, language)]
    return [render(language, texts.ASSISTED_CONFIRMATION, operator=bot.operator), *pack(lines)]


async def registered_by(conn: AsyncConnection, by: str, now: datetime) -> list[dict[str, Any]]:
    """The people ``by`` registered in the last :data:`VISIBLE_FOR`, newest first (coarse fields only)."""
    r = schema.registrants.c
    rows = await conn.execute(select(r.id, r.language, r.area_id, r.created_at).where(
        r.registered_by == by, r.created_at > now - VISIBLE_FOR).order_by(r.id.desc()))
    return [dict(row._mapping) for row in rows]


async def visible(conn: AsyncConnection, by: str, registrant_id: int, now: datetime) -> bool:
    """Whether ``by`` may see this registrant: they registered them, less than :data:`VISIBLE_FOR` ago."""
    r = schema.registrants.c
    found = (await conn.execute(select(r.id).where(
        r.id == registrant_id, r.registered_by == by, r.created_at > now - VISIBLE_FOR))).first()
    return found is not None
