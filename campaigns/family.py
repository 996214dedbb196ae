"""Families and diaspora: the minimal status a registrant chose to share.

A family contact learns only "safe", "asked for help" or "no reply yet", with
the time: never the area, never anything else. A share code lets anyone who
has it ask ``STATUS CODE``; codes are random, stored as keyed hashes,
revocable, and failed look-ups are limited per asker and, against guessing
from many numbers, across everyone: both counted in the database, so the
limits hold across processes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import texts
from bot.i18n import gettext_for, render
from campaigns.outbox import Draft
from domain.vocabulary import ChannelKind, CheckInStatus
from registry import schema
from registry.crypto import KeyRing
from registry.keys import secret_aad
from registry.times import aware

log = structlog.get_logger("beacon.family")
NO_FAMILY_CHANNEL = "no_family_channel"
UNREACHED = Counter("beacon_family_no_channel_total",
                    "Messages to family contacts recorded failed because no channel reaches their phones")

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read aloud and typed on small keyboards.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 8
LOOKUP_WINDOW = timedelta(hours=1)
MAX_FAILED_LOOKUPS = 5  # per asker and window
FAILED_LOOKUP_BUDGET = 100  # across everyone and window: more means someone is guessing codes
# On PostgreSQL look-ups from every process take turns, so that concurrent ones cannot all pass the count
# before any is recorded (the limits hold exactly, however many web processes there are).
_LOOKUP_LOCK = text("SELECT pg_advisory_xact_lock(7466357)")
BUDGET_EXHAUSTED = Counter("beacon_status_lookup_budget_exhausted_total",
                           "STATUS look-ups refused because everyone's failed look-ups used up the window's budget")
FAILED_IN_WINDOW = Gauge("beacon_status_lookup_failures_window",
                         "Failed STATUS look-ups across everyone in the last window, as last counted")
STATUS_TEXT: dict[str, str] = {CheckInStatus.SAFE: texts.STATUS_SAFE, CheckInStatus.NEED_HELP: texts.STATUS_NEED_HELP,
                               CheckInStatus.NO_REPLY: texts.STATUS_NO_REPLY}


def new_code() -> str:
    """A fresh share code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def when(at: datetime) -> str:
    """How a time is shown to families: UTC, to the minute."""
    return aware(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_text(language: str, status: str | None, first_name: str | None, at: datetime | None) -> str:
    """The one sentence a family member gets, in their language."""
    name = first_name or gettext_for(language, texts.RELATIVE)
    if status is None or at is None:
        return render(language, texts.STATUS_NONE, name=name)
    return render(language, STATUS_TEXT[status], name=name, time=when(at))


async def _first_name(conn: AsyncConnection, keys: KeyRing, registrant_id: int) -> str | None:
    ps = schema.profile_secrets.c
    sealed = (await conn.execute(select(ps.value_ct).where(
        ps.registrant_id == registrant_id, ps.field == "first_name"))).scalar()
    return keys.decrypt(sealed, secret_aad({"field": "first_name", "registrant_id": registrant_id})) if sealed else None


async def family_drafts(conn: AsyncConnection, keys: KeyRing, registrant_id: int, status: str, at: datetime,
                        channel: str | None) -> list[Draft]:
    """The message for a registrant's family contact, when they agreed to share; else nothing.

    With no ``channel`` (no SMS sender, no simulator) the message is a failed row, never sent.
    """
    r, ps = schema.registrants.c, schema.profile_secrets.c
    row = (await conn.execute(select(r.share_family, r.family_language).where(r.id == registrant_id))).first()
    if row is None or not row.share_family:
        return []
    sealed = (await conn.execute(select(ps.value_ct).where(
        ps.registrant_id == registrant_id, ps.field == "family_contact"))).scalar()
    if not sealed:
        return []
    if channel is None:
        UNREACHED.inc()
        log.warning("family.no_channel", registrant_id=registrant_id)
        return [Draft(registrant_id, None, ChannelKind.SMS, "", "", error_code=NO_FAMILY_CHANNEL)]
    contact = keys.decrypt(sealed, secret_aad({"field": "family_contact", "registrant_id": registrant_id}))
    language = row.family_language or "en"
    text = status_text(language, status, await _first_name(conn, keys, registrant_id), at)
    return [Draft(registrant_id, None, channel, contact, text)]


async def issue_code(conn: AsyncConnection, keys: KeyRing, registrant_id: int, code: str) -> None:
    """Replace the registrant's share code with ``code`` (only its keyed hash is kept)."""
    await revoke_codes(conn, registrant_id)
    await conn.execute(schema.share_codes.insert().values(
        registrant_id=registrant_id, code_hash=keys.blind_index("share", normalise_code(code)),
        created_at=datetime.now(UTC)))


async def revoke_codes(conn: AsyncConnection, registrant_id: int) -> None:
    """Make every share code of a registrant stop working."""
    sc = schema.share_codes.c
    await conn.execute(update(schema.share_codes).where(sc.registrant_id == registrant_id, sc.revoked_at.is_(None))
                       .values(revoked_at=datetime.now(UTC)))


@dataclass(frozen=True)
class Lookup:
    """The answer to a STATUS look-up."""

    outcome: str  # found | unknown | too_many
    status: str | None = None
    first_name: str | None = None
    at: datetime | None = None


async def lookup(conn: AsyncConnection, keys: KeyRing, requester_bidx: bytes, code: str,
                 now: datetime | None = None) -> Lookup:
    """Resolve a share code for one asker, counting failures against the per-asker limit and the
    budget across everyone; a refused look-up is not counted, so the window ends for everyone alike."""
    sl = schema.status_lookups.c
    now = now or datetime.now(UTC)
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOOKUP_LOCK)
    failed = (sl.found.is_(False), sl.at > now - LOOKUP_WINDOW)
    own = (await conn.execute(select(func.count()).where(sl.requester_bidx == requester_bidx, *failed))).scalar_one()
    if own >= MAX_FAILED_LOOKUPS:
        return Lookup("too_many")
    everyone = (await conn.execute(select(func.count()).where(*failed))).scalar_one()
    FAILED_IN_WINDOW.set(everyone)
    if everyone >= FAILED_LOOKUP_BUDGET:
        BUDGET_EXHAUSTED.inc()
        log.warning("family.lookup_budget_exhausted", failures=everyone)
        return Lookup("too_many")
    sc, r = schema.share_codes.c, schema.registrants.c
    row = (await conn.execute(
        select(r.id, r.last_check_in, r.last_check_in_at).join(schema.share_codes, sc.registrant_id == r.id)
        .where(sc.code_hash == keys.blind_index("share", normalise_code(code)), sc.revoked_at.is_(None))
    )).first()
    await conn.execute(schema.status_lookups.insert().values(requester_bidx=requester_bidx, at=now,
                                                             found=row is not None))
    if row is None:
        FAILED_IN_WINDOW.set(everyone + 1)
        return Lookup("unknown")
    return Lookup("found", row.last_check_in, await _first_name(conn, keys, row.id), row.last_check_in_at)
