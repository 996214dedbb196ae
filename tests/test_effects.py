"""What each effect of the conversation does to the registry (beacon/effects.py), against a real SQLite file."""

from __future__ import annotations

import typing
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from beacon import effects
from bot.state import (
    Confirm,
    Decline,
    DescribeNeed,
    Effect,
    Erase,
    GiveConsent,
    IssueShareCode,
    LinkPhone,
    LookUpStatus,
    OpenCase,
    RecordCheckIn,
    RevokeShareCodes,
    State,
)
from campaigns import family
from domain.vocabulary import ChannelKind
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder
from tests.helpers import REGISTERED, enrol

PHONE = "+2348010000001"
RELATIVE = "+2348010000099"
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


async def apply(db: Database, keys: KeyHolder, registrant_id: int, *todo: Effect,
                state: State | None = None) -> effects.AppliedEffects:
    """Apply effects as for the registrant's latest message, in one transaction."""
    i = schema.inbound.c
    async with db.write() as conn:
        row = (await conn.execute(select(schema.inbound).where(i.registrant_id == registrant_id)
                                  .order_by(i.id.desc()))).first()
        identity = (await conn.execute(select(schema.identities).where(
            schema.identities.c.id == row.identity_id))).first()
        return await effects.apply(conn, keys.ring, todo, row=row, identity=identity,
                                   state=state or State(profile=REGISTERED, consented=True), now=NOW,
                                   default_language="en", family_channel=ChannelKind.SIMULATOR)


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def audited(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(select(schema.audit_log.c.action).order_by(
            schema.audit_log.c.seq))).scalars())


def test_every_effect_has_a_handler() -> None:
    assert set(effects.HANDLERS) == set(typing.get_args(Effect))


async def test_no_effects_keep_the_state_and_address_the_sender(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE)
    applied = await apply(db, keys, person)
    assert (applied.registrant_id, applied.saved, applied.replies, applied.drafts) == (person, True, [], [])
    assert applied.identity_id is not None


async def test_consent_is_recorded_and_audited(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE)
    await apply(db, keys, person, GiveConsent("2026-12", "fr"))
    c = schema.consents.c
    assert await count(db, schema.consents, c.registrant_id == person, c.notice_version == "2026-12",
                       c.language == "fr", c.channel == ChannelKind.SIMULATOR) == 1
    assert (await audited(db))[-1] == "consent.given"


async def test_declining_or_erasing_leaves_replies_linked_to_no_one(db: Database, keys: KeyHolder) -> None:
    for n, effect in enumerate((Decline(), Erase())):
        person = await enrol(db, keys, f"+23480100000{n}2")
        applied = await apply(db, keys, person, effect)
        assert (applied.registrant_id, applied.identity_id, applied.saved) == (None, None, False)
    assert (await audited(db))[-2:] == ["consent.refused", "registrant.erased"]
    r = schema.registrants.c
    assert await count(db, schema.registrants, r.consented.is_(True)) == 0


async def test_confirm_stamps_the_details_as_current(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE)
    await apply(db, keys, person, Confirm())
    async with db.read() as conn:
        confirmed = (await conn.execute(select(schema.registrants.c.confirmed_at))).scalar_one()
    assert confirmed.replace(tzinfo=UTC) == NOW


async def test_a_check_in_is_kept_and_told_to_the_family_who_may_know(db: Database, keys: KeyHolder) -> None:
    sharing = replace(REGISTERED, first_name="Amina", family_contact=RELATIVE, share_family=True)
    person = await enrol(db, keys, PHONE, sharing)
    applied = await apply(db, keys, person, RecordCheckIn(None, "safe"))
    [draft] = applied.drafts
    assert (draft.address, draft.channel) == (RELATIVE, ChannelKind.SIMULATOR)
    assert draft.text == family.status_text("en", "safe", "Amina", NOW)
    r = schema.registrants.c
    assert await count(db, schema.registrants, r.id == person, r.last_check_in == "safe") == 1
    private = await enrol(db, keys, "+2348010000002")
    assert (await apply(db, keys, private, RecordCheckIn(None, "need_help"))).drafts == []


async def test_need_help_opens_one_case_that_gathers_the_details(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE)
    await apply(db, keys, person, OpenCase(None), DescribeNeed(category="shelter"))
    await apply(db, keys, person, OpenCase(None), DescribeNeed(details="Roof collapsed"))
    c = schema.cases.c
    assert await count(db, schema.cases, c.registrant_id == person, c.area_id == "tripoli",
                       c.category == "shelter", c.details_ct.is_not(None)) == 1
    assert (await audited(db)).count("case.opened") >= 1


async def test_share_codes_answer_status_look_ups_until_revoked(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE, replace(REGISTERED, first_name="Amina"))
    asker = await enrol(db, keys, "+2348010000002")
    await apply(db, keys, person, IssueShareCode("CCCCCCCC"), RecordCheckIn(None, "safe"))
    [found] = (await apply(db, keys, asker, LookUpStatus("cccc cccc"))).replies
    assert "Amina" in found.text and "safe" in found.text
    await apply(db, keys, person, RevokeShareCodes())
    [unknown] = (await apply(db, keys, asker, LookUpStatus("CCCCCCCC"))).replies
    assert "Amina" not in unknown.text
    assert {"share_code.issued", "share_code.revoked"} <= set(await audited(db))


async def test_a_shared_phone_number_is_linked_to_the_registration(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, "4711", channel=ChannelKind.TELEGRAM, provider="telegram")
    await apply(db, keys, person, LinkPhone(PHONE))
    ident = schema.identities.c
    assert await count(db, schema.identities, ident.registrant_id == person) == 2
    assert (await audited(db))[-1] == "identity.linked"
