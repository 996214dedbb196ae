"""Broadcasts: create, fan out to the outbox in batches, count, cancel.

Fan-out is resumable: each batch writes its outbox rows, its recipient rows
and the broadcast's cursor in one transaction, so a process killed at any
point restarts from the last committed batch and no one gets the message
twice (from the service's point of view) or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import texts
from bot.i18n import gettext_for
from bot.machine import check_in_buttons
from bot.polls import open_poll, poll_buttons, poll_text
from campaigns import outbox, webhooks
from campaigns.outbox import Draft
from domain.areas import Gazetteer
from domain.vocabulary import Answer, ChannelKind, CheckInStatus, LegalBasis
from registry import audit, schema
from registry.crypto import KeyRing
from registry.db import Database
from registry.keys import identity_aad
from registry.times import iso

BATCH = 1000
SENT_STATES = ("sent", "delivered", "read")


@dataclass(frozen=True)
class Audience:
    """Who a broadcast reaches; empty means everyone registered."""

    areas: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    nationalities: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(**{k: tuple(data.get(k) or ()) for k in ("areas", "languages", "nationalities", "channels")})

    def to_json(self) -> dict[str, list[str]]:
        return {"areas": list(self.areas), "languages": list(self.languages),
                "nationalities": list(self.nationalities), "channels": list(self.channels)}


def message_for(texts_by_language: dict[str, str], language: str, default: str, check_in: bool,
                poll: dict[str, Any] | None = None) -> str:
    """The text one recipient gets: their language, else the default, with the check-in question or the poll.

    A broadcast that asks both puts the check-in first: the poll follows the person's check-in answer, so
    that a number never answers two questions."""
    text = texts_by_language.get(language) or texts_by_language.get(default) or next(iter(texts_by_language.values()))
    shown = language if language in texts_by_language else default
    if check_in:
        text = f"{text}\n{gettext_for(shown, texts.CHECKIN_QUESTION)}"
    elif poll:
        text = f"{text}\n{poll_text(open_poll(0, poll, language, default), shown)}"
    return text


def buttons_for(language: str, default: str, check_in: bool,
                poll: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The quick answers of a broadcast's message: the check-in's, else the poll's."""
    if check_in:
        return check_in_buttons(language)
    if poll:
        return poll_buttons(open_poll(0, poll, language, default))
    return ()


def _delivery_channel_column(calls: bool) -> ColumnElement[str]:
    """:func:`campaigns.outbox.delivery_channel` in SQL, for the audience's channel filter."""
    i = schema.identities.c
    voice = ChannelKind.VOICE.value if calls else ChannelKind.SMS.value
    return case((i.preferred_channel == ChannelKind.VOICE, voice),
                (i.last_channel == ChannelKind.VOICE, ChannelKind.SMS.value), else_=i.last_channel)


def audience_query(gazetteer: Gazetteer, audience: Audience, calls: bool = True):  # type: ignore[no-untyped-def]
    """Registrants a broadcast reaches with their reachable identities (one row per identity); ``calls``: whether
    those who chose calls can be called (else they are texted).

    Invited people (imported, not yet consenting) are left out, unless their import recorded vital
    interests as the legal basis for crisis messages."""
    r, i = schema.registrants.c, schema.identities.c
    query = (select(r.id, r.language, r.consented, i.id.label("identity_id"), i.last_channel, i.preferred_channel,
                    i.address_ct, i.bidx, i.last_used_at)
             .join(schema.identities, i.registrant_id == r.id)
             .where(or_(r.consented.is_(True), r.legal_basis == LegalBasis.VITAL_INTERESTS), r.opted_out.is_(False),
                    r.area_id.is_not(None), i.reachable.is_(True), i.address_ct != b""))
    if audience.areas:
        query = query.where(r.area_id.in_(sorted(gazetteer.descendants(list(audience.areas)))))
    if audience.languages:
        query = query.where(r.language.in_(audience.languages))
    if audience.nationalities:
        query = query.where(r.nationality.in_([n.upper() for n in audience.nationalities]))
    if audience.channels:
        query = query.where(_delivery_channel_column(calls).in_(audience.channels))
    return query


def pick(rows: Iterable[Any]) -> dict[int, Any]:
    """One identity per registrant: the one they used last."""
    chosen: dict[int, Any] = {}
    for row in rows:
        seen = chosen.get(row.id)
        if seen is None or row.last_used_at > seen.last_used_at:
            chosen[row.id] = row
    return chosen


async def create(db: Database, *, texts_by_language: dict[str, str], audience: Audience, check_in: bool,
                 send_at: datetime | None, remind_after_minutes: int | None, created_by: str,
                 draft_key: str | None = None, poll: dict[str, Any] | None = None,
                 call_reminders: bool = False) -> int:
    """Store a broadcast to send now or at ``send_at``; the runner fans it out.

    With a ``draft_key``, sending the same draft again returns the broadcast it already made."""
    now = datetime.now(UTC)
    b = schema.broadcasts.c
    try:
        async with db.write() as conn:
            broadcast_id = (await conn.execute(schema.broadcasts.insert().values(
                texts=texts_by_language, audience=audience.to_json(), check_in=check_in, send_at=send_at or now,
                remind_after_minutes=remind_after_minutes, status="scheduled", cursor=0, created_by=created_by,
                created_at=now, draft_key=draft_key, poll=poll, call_reminders=call_reminders)
                .returning(b.id))).scalar_one()
            await audit.append(conn, created_by, "broadcast.created", str(broadcast_id),
                               {"languages": sorted(texts_by_language), "check_in": check_in,
                                "poll_options": len(poll["options"]) if poll else 0})
    except IntegrityError:
        if draft_key is None:
            raise
        async with db.read() as conn:
            broadcast_id = (await conn.execute(select(b.id).where(b.draft_key == draft_key))).scalar_one()
    return int(broadcast_id)


async def insert_draft(conn: AsyncConnection, *, texts_by_language: dict[str, str], audience: Audience,
                       created_by: str) -> int:
    """Store a draft: it waits for a responder to send it (``approve``), and is never due by itself."""
    now = datetime.now(UTC)
    b = schema.broadcasts.c
    broadcast_id = (await conn.execute(schema.broadcasts.insert().values(
        texts=texts_by_language, audience=audience.to_json(), check_in=False, send_at=now, status="draft", cursor=0,
        created_by=created_by, created_at=now).returning(b.id))).scalar_one()
    await audit.append(conn, created_by, "broadcast.drafted", str(broadcast_id),
                       {"languages": sorted(texts_by_language)})
    return int(broadcast_id)


async def approve(db: Database, broadcast_id: int, by: str) -> str | None:
    """Send a draft now: it becomes due at once. Returns the status it had (None when unknown)."""
    return await _leave_draft(db, broadcast_id, by, "broadcast.approved", None,
                              status="scheduled", send_at=datetime.now(UTC))


async def discard(db: Database, broadcast_id: int, by: str, detail: dict[str, Any] | None = None) -> str | None:
    """Throw a draft away unsent (audited); the status it had, None when unknown. Only a draft changes."""
    return await _leave_draft(db, broadcast_id, by, "broadcast.discarded", detail,
                              status="cancelled", finished_at=datetime.now(UTC))


async def _leave_draft(db: Database, broadcast_id: int, by: str, action: str, detail: dict[str, Any] | None,
                       **values: Any) -> str | None:
    """Move a draft on (only a draft), audited as ``action``; the status it had, None when unknown."""
    b = schema.broadcasts.c
    async with db.write() as conn:
        found = (await conn.execute(select(b.status).where(b.id == broadcast_id))).scalar()
        if found == "draft":
            await conn.execute(update(schema.broadcasts).where(b.id == broadcast_id, b.status == "draft")
                               .values(**values))
            await audit.append(conn, by, action, str(broadcast_id), detail)
    return str(found) if found is not None else None


async def made_from(db: Database, draft_key: str) -> int | None:
    """The broadcast a preview (its ``draft_key``) already made, if any."""
    b = schema.broadcasts.c
    async with db.read() as conn:
        found = (await conn.execute(select(b.id).where(b.draft_key == draft_key))).scalar()
    return int(found) if found is not None else None


async def due(db: Database) -> list[int]:
    """Broadcasts whose time has come and that are not finished (including ones a crash interrupted)."""
    b = schema.broadcasts.c
    async with db.read() as conn:
        rows = await conn.execute(select(b.id).where(b.status.in_(("scheduled", "sending")),
                                                      b.send_at <= datetime.now(UTC)).order_by(b.send_at))
        return [int(x) for x in rows.scalars().all()]


async def fan_out_batch(db: Database, keys: KeyRing, gazetteer: Gazetteer, broadcast_id: int,
                        default_language: str, batch: int = BATCH, calls: bool = True) -> int | None:
    """Queue the next batch of recipients; returns how many, or None when the broadcast is done."""
    b = schema.broadcasts.c
    async with db.write() as conn:
        query = select(schema.broadcasts).where(b.id == broadcast_id)
        if not db.sqlite:
            query = query.with_for_update()  # one runner per batch, even with several workers
        broadcast = (await conn.execute(query)).first()
        if broadcast is None or broadcast.status not in ("scheduled", "sending"):
            return None
        audience = Audience.from_json(broadcast.audience)
        r = schema.registrants.c
        ids = (await conn.execute(
            audience_query(gazetteer, audience, calls).with_only_columns(r.id).distinct()
            .where(r.id > broadcast.cursor).order_by(r.id).limit(batch))).scalars().all()
        now = datetime.now(UTC)
        if not ids:
            await conn.execute(update(schema.broadcasts).where(b.id == broadcast_id)
                               .values(status="sent", finished_at=now))
            await audit.append(conn, "system", "broadcast.sent", str(broadcast_id))
            recipients = (await conn.execute(select(func.count()).select_from(schema.recipients).where(
                schema.recipients.c.broadcast_id == broadcast_id))).scalar_one()
            await webhooks.emit(conn, keys, "broadcast.finished", {"broadcast": {
                "id": broadcast_id, "status": "sent", "recipients": int(recipients), "finished_at": iso(now)}})
            return None
        rows = (await conn.execute(audience_query(gazetteer, audience, calls).where(r.id.in_(ids)))).all()
        chosen = pick(rows)
        drafts: list[Draft] = []
        members: list[tuple[int, str]] = []
        for registrant_id in ids:
            row = chosen[registrant_id]
            language = row.language or default_language
            address = keys.decrypt(row.address_ct, identity_aad({"bidx": row.bidx}))
            channel = outbox.delivery_channel(row.last_channel, row.preferred_channel, calls)
            # Someone invited under vital interests gets the warning, not the question: until they say yes,
            # a 1 or 2 from them cannot be taken as an answer (see bot/invitation.py). A call speaks the
            # check-in question and the poll, and gathers the answers itself (bot.ivr).
            asks = broadcast.check_in and row.consented and channel != ChannelKind.VOICE
            poll = broadcast.poll if row.consented and channel != ChannelKind.VOICE else None
            text = message_for(broadcast.texts, language, default_language, asks, poll)
            buttons = buttons_for(language, default_language, asks, poll)
            drafts.append(Draft(registrant_id, row.identity_id, channel, address, text,
                                buttons=buttons, broadcast_id=broadcast_id))
            members.append((registrant_id, language))
        refs = await outbox.enqueue_returning_ids(conn, keys, drafts)
        await conn.execute(schema.recipients.insert(), [
            {"broadcast_id": broadcast_id, "registrant_id": rid, "outbox_id": outbox_id, "language": language,
             "reminders_sent": 0, "last_sent_at": now}
            for (rid, language), outbox_id in zip(members, refs, strict=True)
        ])
        await conn.execute(update(schema.broadcasts).where(b.id == broadcast_id)
                           .values(status="sending", cursor=ids[-1]))
        return len(ids)


async def cancel(db: Database, broadcast_id: int, by: str) -> int | None:
    """Stop a broadcast: no more fan-out, queued messages withdrawn.

    Returns how many queued messages were withdrawn (None when the broadcast is unknown); only a
    cancellation that stopped something is audited."""
    b, o = schema.broadcasts.c, schema.outbox.c
    async with db.write() as conn:
        found = (await conn.execute(select(b.status).where(b.id == broadcast_id))).scalar()
        if found is None:
            return None
        stopped = (await conn.execute(update(schema.broadcasts).where(
            b.id == broadcast_id, b.status.in_(("draft", "scheduled", "sending")))
            .values(status="cancelled", finished_at=datetime.now(UTC)))).rowcount
        withdrawn = (await conn.execute(update(schema.outbox).where(
            o.broadcast_id == broadcast_id, o.status == "queued")
            .values(status="cancelled", updated_at=datetime.now(UTC)))).rowcount
        if stopped or withdrawn:
            await audit.append(conn, by, "broadcast.cancelled", str(broadcast_id), {"withdrawn": withdrawn})
    return int(withdrawn)


async def summary(conn: AsyncConnection, broadcast_id: int) -> dict[str, Any] | None:
    """The broadcast's state and tallies, as the API shows them."""
    b = schema.broadcasts.c
    broadcast = (await conn.execute(select(schema.broadcasts).where(b.id == broadcast_id))).first()
    if broadcast is None:
        return None
    rc, o = schema.recipients.c, schema.outbox.c
    counted = (await conn.execute(
        select(
            func.count(),
            func.sum(case((o.status.in_(("queued", "claimed")), 1), else_=0)),
            func.sum(case((o.status.in_(SENT_STATES), 1), else_=0)),
            func.sum(case((o.status.in_(("delivered", "read")), 1), else_=0)),
            func.sum(case((o.status.in_(("failed", "undelivered")), 1), else_=0)),
            func.sum(case((rc.answer == Answer.SAFE, 1), else_=0)),
            func.sum(case((rc.answer == Answer.NEED_HELP, 1), else_=0)),
        ).select_from(schema.recipients.outerjoin(schema.outbox, o.id == rc.outbox_id))
        .where(rc.broadcast_id == broadcast_id)
    )).one()
    recipients, queued, sent, delivered, failed, safe, need_help = (int(x or 0) for x in counted)
    counts: dict[str, Any] = {"recipients": recipients, "queued": queued, "sent": sent, "delivered": delivered,
                              "failed": failed}
    if broadcast.check_in:
        counts.update({CheckInStatus.SAFE: safe, CheckInStatus.NEED_HELP: need_help,
                       CheckInStatus.NO_REPLY: recipients - safe - need_help})
    if broadcast.poll:
        counts["poll"] = await poll_tally(conn, broadcast_id, len(broadcast.poll["options"]))
    found = {
        "id": broadcast.id, "status": broadcast.status, "check_in": broadcast.check_in,
        "texts": broadcast.texts, "audience": broadcast.audience,
        "send_at": iso(broadcast.send_at), "created_at": iso(broadcast.created_at),
        "created_by": broadcast.created_by, "remind_after_minutes": broadcast.remind_after_minutes,
        "call_reminders": broadcast.call_reminders,
        "counts": counts,
    }
    if broadcast.poll:
        found["poll"] = broadcast.poll
    return found


async def poll_tally(conn: AsyncConnection, broadcast_id: int, options: int) -> dict[str, int]:
    """How many recipients chose each option ("1" .. "n"), by their latest answer."""
    rc = schema.recipients.c
    rows = (await conn.execute(select(rc.poll_answer, func.count()).where(
        rc.broadcast_id == broadcast_id, rc.poll_answer.is_not(None)).group_by(rc.poll_answer))).all()
    found = {int(option): int(n) for option, n in rows}
    return {str(n): found.get(n, 0) for n in range(1, options + 1)}

