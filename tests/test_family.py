"""Family status and share codes (campaigns/family.py), against a real SQLite file."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.state import Profile
from campaigns import family
from domain.vocabulary import ChannelKind
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder
from tests.helpers import REGISTERED, enrol

SHARING = replace(REGISTERED, first_name="Amina", family_contact="+2348010000099", share_family=True,
                  family_language="fr")
AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
ASKER = b"asker-blind-index"


async def checked_in(db: Database, registrant_id: int, answer: str, at: datetime = AT) -> None:
    r = schema.registrants.c
    async with db.write() as conn:
        await conn.execute(update(schema.registrants).where(r.id == registrant_id).values(
            last_check_in=answer, last_check_in_at=at))


def test_codes_are_random_unambiguous_and_read_back_however_typed() -> None:
    codes = {family.new_code() for _ in range(50)}
    assert len(codes) == 50
    assert all(len(c) == family.CODE_LENGTH and set(c) <= set(family.CODE_ALPHABET) for c in codes)
    assert not set("0O1IL2Z5S8B") & set(family.CODE_ALPHABET)
    assert family.normalise_code(" acde-fg34 ") == "ACDEFG34"


def test_status_text_names_the_person_and_the_time_and_nothing_else() -> None:
    assert family.when(AT) == "2026-12-04 09:30 UTC"
    safe = family.status_text("en", "safe", "Amina", AT)
    assert "Amina" in safe and "safe" in safe and "2026-12-04 09:30 UTC" in safe
    help_ = family.status_text("en", "need_help", "Amina", AT)
    assert help_ != safe and "2026-12-04 09:30 UTC" in help_
    assert family.status_text("en", "no_reply", None, AT) != family.status_text("en", "safe", None, AT)
    assert "Amina" in family.status_text("en", None, "Amina", None)  # no check-in yet
    assert family.status_text("fr", "safe", "Amina", AT) != safe  # in the asker's language


async def test_family_contact_is_told_only_when_the_person_agreed(db: Database, keys: KeyHolder) -> None:
    sharing = await enrol(db, keys, "+2348010000001", SHARING)
    private = await enrol(db, keys, "+2348010000002", replace(SHARING, share_family=False))
    no_contact = await enrol(db, keys, "+2348010000003", replace(SHARING, family_contact=None))
    async with db.write() as conn:
        [draft] = await family.family_drafts(conn, keys.ring, sharing, "safe", AT, ChannelKind.SIMULATOR)
        assert await family.family_drafts(conn, keys.ring, private, "safe", AT, ChannelKind.SIMULATOR) == []
        assert await family.family_drafts(conn, keys.ring, no_contact, "safe", AT, ChannelKind.SIMULATOR) == []
    assert (draft.registrant_id, draft.identity_id, draft.channel, draft.address) == (
        sharing, None, ChannelKind.SIMULATOR, "+2348010000099")
    assert draft.text == family.status_text("fr", "safe", "Amina", AT)
    assert "Tripoli" not in draft.text and "tripoli" not in draft.text  # never the area


async def test_a_share_code_answers_with_the_latest_check_in(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, "+2348010000001", SHARING)
    await checked_in(db, person, "safe")
    async with db.write() as conn:
        await family.issue_code(conn, keys.ring, person, "ACDE FG34")
        found = await family.lookup(conn, keys.ring, ASKER, "acde-fg34")
    assert found == family.Lookup("found", "safe", "Amina", found.at)
    assert found.at is not None and found.at.replace(tzinfo=UTC) == AT


async def test_a_new_code_replaces_the_old_and_revoking_ends_them_all(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, "+2348010000001", SHARING)
    async with db.write() as conn:
        await family.issue_code(conn, keys.ring, person, "AAAAAAAA")
        await family.issue_code(conn, keys.ring, person, "CCCCCCCC")
        assert (await family.lookup(conn, keys.ring, ASKER, "AAAAAAAA")).outcome == "unknown"
        assert (await family.lookup(conn, keys.ring, ASKER, "CCCCCCCC")).outcome == "found"
        await family.revoke_codes(conn, person)
        assert (await family.lookup(conn, keys.ring, ASKER, "CCCCCCCC")).outcome == "unknown"


async def test_guessing_is_stopped_per_asker_for_an_hour(db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, "+2348010000001", Profile(language="en", area_id="tripoli"))
    async with db.write() as conn:
        await family.issue_code(conn, keys.ring, person, "CCCCCCCC")
        for _ in range(family.MAX_FAILED_LOOKUPS):
            assert (await family.lookup(conn, keys.ring, ASKER, "AAAAAAAA")).outcome == "unknown"
        assert (await family.lookup(conn, keys.ring, ASKER, "CCCCCCCC")).outcome == "too_many"  # even the right one
        assert (await family.lookup(conn, keys.ring, b"someone else", "CCCCCCCC")).outcome == "found"
        sl = schema.status_lookups.c
        await conn.execute(update(schema.status_lookups).values(at=sl.at - family.LOOKUP_WINDOW - timedelta(minutes=1)))
        assert (await family.lookup(conn, keys.ring, ASKER, "CCCCCCCC")).outcome == "found"  # the hour has passed
