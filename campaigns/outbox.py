"""The durable outbox: every message we send is a row first.

Rows move queued -> claimed (with a lease) -> sent -> delivered/read, or back
to queued with a later ``next_attempt_at`` on a transient error, or to failed.
A process that dies holding a lease loses it when the lease ends, and another
claim sends the message again: at-least-once, with the provider id recorded
so duplicates are visible.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.i18n import gettext_for, render
from bot.texts import CONTACT_BUTTON
from channels.base import Button, Outbound
from domain.vocabulary import ChannelKind, Delivery
from registry import schema
from registry.crypto import KeyRing
from registry.db import Database
from registry.keys import identity_aad, outbox_aad

LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to queue."""

    registrant_id: int | None
    identity_id: int | None
    channel: str
    address: str
    text: str
    buttons: tuple[tuple[str, str], ...] = ()
    contact_button: str | None = None  # the "share my phone number" button's label, in the person's language
    template: bool = False
    broadcast_id: int | None = None
    error_code: str | None = None  # a message no channel can carry: recorded failed at once, never sent


def delivery_channel(last_channel: str, preferred_channel: str, calls: bool = True) -> str:
    """The channel that reaches a person: a call for those who chose calls (when Beacon can place calls), else
    where they last wrote from (after a call of theirs, SMS to the same phone)."""
    if preferred_channel == ChannelKind.VOICE and calls:
        return ChannelKind.VOICE
    return ChannelKind.SMS if last_channel == ChannelKind.VOICE else last_channel


def row_values(keys: KeyRing, draft: Draft, now: datetime) -> dict[str, object]:
    """The outbox row for one draft, with address and body sealed (a failed draft keeps neither)."""
    ref = secrets.token_hex(16)
    options: dict[str, object] = {}
    if draft.buttons:
        options["buttons"] = [list(b) for b in draft.buttons]
    if draft.contact_button:
        options["contact_button"] = draft.contact_button
    if draft.template:
        options["template"] = True
    failed = draft.error_code is not None
    return {
        "ref": ref, "registrant_id": draft.registrant_id, "identity_id": draft.identity_id, "channel": draft.channel,
        "address_ct": None if failed else keys.encrypt(draft.address, outbox_aad("address")({"ref": ref})),
        "body_ct": None if failed else keys.encrypt(draft.text, outbox_aad("body")({"ref": ref})),
        "options": options, "broadcast_id": draft.broadcast_id,
        "status": Delivery.FAILED if failed else Delivery.QUEUED, "error_code": draft.error_code, "attempts": 0,
        "next_attempt_at": now, "created_at": now, "updated_at": now,
    }


async def enqueue(conn: AsyncConnection, keys: KeyRing, drafts: list[Draft]) -> int:
    """Queue messages inside the caller's transaction; returns how many."""
    if not drafts:
        return 0
    now = datetime.now(UTC)
    await conn.execute(schema.outbox.insert(), [row_values(keys, d, now) for d in drafts])
    return len(drafts)


async def enqueue_returning_ids(conn: AsyncConnection, keys: KeyRing, drafts: list[Draft]) -> list[int]:
    """Queue messages and return their row ids, in the drafts' order."""
    if not drafts:
        return []
    now = datetime.now(UTC)
    query = schema.outbox.insert().returning(schema.outbox.c.id, sort_by_parameter_order=True)
    result = await conn.execute(query, [row_values(keys, d, now) for d in drafts])
    return [int(x) for x in result.scalars().all()]


def _due(now: Any):  # type: ignore[no-untyped-def]
    o = schema.outbox.c
    earlier = schema.outbox.alias("earlier").c
    # A person's messages leave in the order they were queued: while an earlier one waits for a retry, a later
    # one queued meanwhile (a second broadcast, say) is not due. So a claim, ordered by next_attempt_at, takes
    # each person's messages in id order, and the sender's per-person chain keeps that order on the wire.
    waiting_behind = exists().where(
        earlier.identity_id == o.identity_id, earlier.status == "queued", earlier.id < o.id,
        earlier.next_attempt_at > o.next_attempt_at)
    return and_(
        or_(and_(o.status == "queued", o.next_attempt_at <= now), and_(o.status == "claimed", o.lease_until < now)),
        or_(o.identity_id.is_(None), ~waiting_behind))


# Built once: the sender claims many times a second, and building these (an alias, a correlated
# subquery) cost more than running them.
_o = schema.outbox.c
_ANY_DUE = select(_o.id).where(_due(bindparam("_now"))).limit(1)
_LANGUAGE = (select(schema.registrants.c.language).where(schema.registrants.c.id == _o.registrant_id)
             .scalar_subquery().label("language"))
_CLAIM = (select(_o.id, _o.ref, _o.registrant_id, _o.identity_id, _o.channel, _o.address_ct, _o.body_ct, _o.options,
                 _o.attempts, _o.created_at, _LANGUAGE)
          .where(_due(bindparam("_now"))).order_by(_o.next_attempt_at, _o.id).limit(bindparam("_limit")))
_CLAIM_LOCKING = _CLAIM.with_for_update(skip_locked=True)
_PENDING = (select(_o.identity_id, _o.id)
            .where(_o.identity_id.in_(bindparam("_identities", expanding=True)), _o.status.in_(("queued", "claimed")))
            .order_by(_o.identity_id, _o.id))
_TAKE = update(schema.outbox).where(_o.id.in_(bindparam("_ids", expanding=True))).values(
    status="claimed", lease_until=bindparam("_until"), attempts=_o.attempts + 1, updated_at=bindparam("_now"))


async def any_due(db: Database) -> bool:
    """Whether any message is due to be sent now."""
    async with db.read() as conn:
        return (await conn.execute(_ANY_DUE, {"_now": datetime.now(UTC)})).first() is not None


async def claim(db: Database, limit: int, lease: timedelta = LEASE) -> list[dict[str, Any]]:
    """Take up to ``limit`` due messages for this process, leased for ``lease``."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        query = _CLAIM if db.sqlite else _CLAIM_LOCKING
        rows = [dict(r._mapping) for r in (await conn.execute(query, {"_now": now, "_limit": limit})).all()]
        if rows and not db.sqlite:
            rows = await _first_in_line(conn, rows)
        if rows:
            await conn.execute(_TAKE, {"_ids": [r["id"] for r in rows], "_until": now + lease, "_now": now})
    return rows


async def _first_in_line(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep a person's rows only from their earliest unsent message on, and only while none is skipped.

    Several processes claim at once on PostgreSQL: without this, one could take a person's first message
    (locking it) while another skipped it and took the second, and the two would race on the wire, out of
    order and past the chat's pace. A person's later messages wait until their earlier ones are sent (or
    taken together with them by one process, whose per-person chain keeps the order).
    """
    identities = sorted({int(r["identity_id"]) for r in rows if r["identity_id"] is not None})
    if not identities:
        return rows
    taken = {r["id"] for r in rows}
    in_line: set[int] = set()
    stopped: set[int] = set()  # people with an unsent message this claim does not hold
    for identity_id, row_id in (await conn.execute(_PENDING, {"_identities": identities})).all():
        if identity_id in stopped:
            continue
        if row_id in taken:
            in_line.add(row_id)
        else:
            stopped.add(identity_id)
    return [r for r in rows if r["identity_id"] is None or r["id"] in in_line]


def contact_button(options: dict[str, Any], language: str) -> str | None:
    """The label of a queued message's "share my phone number" button, None for none.

    Rows queued before the label travelled with the message say ``"request_contact": true`` (or hold
    the label under that name): the catalog gives their label in ``language``.
    """
    label = options.get("contact_button", options.get("request_contact"))
    if label is True:
        return gettext_for(language, CONTACT_BUTTON)
    return label if isinstance(label, str) and label else None


def to_outbound(keys: KeyRing, row: dict[str, Any], default_language: str) -> Outbound:
    """Open a claimed row into the message a channel sends; the person's language, else ``default_language``,
    for a button label the row lacks."""
    ref = {"ref": row["ref"]}
    options = row["options"] or {}
    assert isinstance(options, dict)
    return Outbound(
        outbox_id=int(row["id"]),
        channel=str(row["channel"]),
        address=keys.decrypt(row["address_ct"], outbox_aad("address")(ref)),
        text=keys.decrypt(row["body_ct"], outbox_aad("body")(ref)),
        buttons=tuple(Button(label, data) for label, data in options.get("buttons", ())),
        contact_button=contact_button(options, row.get("language") or default_language),
        template=bool(options.get("template")),
    )


async def to_registrant(conn: AsyncConnection, keys: KeyRing, registrant_id: int, message: str,
                        default_language: str, **params: object) -> Draft | None:
    """A message to a registrant in their language, where they last wrote from (None if unreachable); a text,
    so by SMS after a call."""
    r, i = schema.registrants.c, schema.identities.c
    language = (await conn.execute(select(r.language).where(r.id == registrant_id))).scalar()
    identity = (await conn.execute(select(schema.identities).where(
        i.registrant_id == registrant_id, i.reachable.is_(True), i.address_ct != b"",
    ).order_by(i.last_used_at.desc()).limit(1))).first()
    if identity is None:
        return None
    address = keys.decrypt(identity.address_ct, identity_aad({"bidx": identity.bidx}))
    return Draft(registrant_id, identity.id, delivery_channel(identity.last_channel, ChannelKind.SMS), address,
                 render(language or default_language, message, **params))


async def tell(conn: AsyncConnection, keys: KeyRing, registrant_id: int, message: str, default_language: str) -> bool:
    """Queue one message to a registrant, in their language, where they last wrote from; False if unreachable."""
    draft = await to_registrant(conn, keys, registrant_id, message, default_language)
    if draft is not None:
        await enqueue(conn, keys, [draft])
    return draft is not None
