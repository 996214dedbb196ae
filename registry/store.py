"""Registrants, identities and inbound messages: the registry's reads and writes.

Functions take an open connection so that callers decide the transaction:
one inbound message is stored in one, then processed (state, effects, outbox)
in the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.polls import open_poll
from bot.state import OpenPoll, Profile, State, Step
from channels.base import Inbound
from domain.vocabulary import ChannelKind
from registry import schema
from registry.crypto import KeyRing
from registry.keys import identity_aad, inbound_aad, secret_aad
from registry.times import aware

SECRET_FIELDS = ("first_name", "family_contact", "employer", "recruitment_agency")
COARSE_FIELDS = ("language", "area_id", "nationality", "gender", "age_band", "household_size", "share_family",
                 "family_language")
# The last-use time of an identity the person has not written from.
NEVER = datetime(2000, 1, 1, tzinfo=UTC)
# A check-in stays open for answers this long.
CHECK_IN_OPEN = timedelta(days=7)


def identity_kind(channel: str) -> str:
    """SMS and WhatsApp share one identity per phone number; Telegram chats and simulator senders each
    have an address space of their own, so a simulated sender can never be a real person."""
    if channel in (ChannelKind.TELEGRAM, ChannelKind.SIMULATOR):
        return str(channel)
    return "phone"


@dataclass(frozen=True, slots=True)
class Stored:
    """An inbound message that was new and is now stored."""

    inbound_id: int
    registrant_id: int
    identity_id: int


def _now() -> datetime:
    return datetime.now(UTC)


# The statements every message runs, built once: building a statement costs several times what
# executing it on SQLite does. Parameters are bound at execution; an UPDATE's SET clause and an
# INSERT's columns come from the parameter names (typed by their columns), "_"-names are for WHERE.
_r, _i, _s, _in, _c = (schema.registrants, schema.identities, schema.profile_secrets, schema.inbound,
                       schema.consents)
_FIND_IDENTITY = select(_i).where(_i.c.bidx == bindparam("_bidx"))
# Many rows at once, ids back in the order of the rows given.
_NEW_REGISTRANTS = insert(_r).returning(_r.c.id, sort_by_parameter_order=True)
_NEW_IDENTITIES = insert(_i).returning(_i.c.id, sort_by_parameter_order=True)
_NEW_IDENTITY = insert(_i).returning(_i.c.id)
_UPDATE_IDENTITY = update(_i).where(_i.c.id == bindparam("_id"))
_UPDATE_REGISTRANT = update(_r).where(_r.c.id == bindparam("_id"))
_UPDATE_INBOUND = update(_in).where(_in.c.id == bindparam("_id"))
_FIND_IDENTITIES = select(_i).where(_i.c.bidx.in_(bindparam("_bidxs", expanding=True)))
_INSERT_INBOUNDS = {  # many rows at once: which were new is told by provider + id, not by order
    "sqlite": sqlite_insert(_in).on_conflict_do_nothing().returning(_in.c.id, _in.c.provider, _in.c.provider_id),
    "postgresql": postgresql_insert(_in).on_conflict_do_nothing().returning(
        _in.c.id, _in.c.provider, _in.c.provider_id),
}
_CONSENT_AT = (select(_c.c.given_at).where(_c.c.registrant_id == _r.c.id, _c.c.withdrawn_at.is_(None))
               .order_by(_c.c.id.desc()).limit(1).scalar_subquery())
_LOAD_REGISTRANT = select(_r, _CONSENT_AT.label("consent_at")).where(_r.c.id == bindparam("_id"))
_LOAD_SECRETS = select(_s.c.field, _s.c.value_ct).where(_s.c.registrant_id == bindparam("_id"))
_LOAD_IDENTITIES = (select(_i.c.last_channel, _i.c.bidx, _i.c.address_ct)
                    .where(_i.c.registrant_id == bindparam("_id")).order_by(_i.c.id))
_DELETE_SECRET = delete(_s).where(_s.c.registrant_id == bindparam("_id"), _s.c.field == bindparam("_field"))
_INSERT_SECRET = insert(_s)
_rc, _b = schema.recipients, schema.broadcasts
_OPEN_CHECK_IN = (select(_rc.c.broadcast_id, _rc.c.last_sent_at).join(_b, _b.c.id == _rc.c.broadcast_id)
                  .where(_rc.c.registrant_id == bindparam("_id"), _rc.c.answer.is_(None), _b.c.check_in.is_(True),
                         _b.c.status != "cancelled", _rc.c.last_sent_at > bindparam("_since"))
                  .order_by(_rc.c.last_sent_at.desc()).limit(1))
_OPEN_POLL = (select(_rc.c.broadcast_id, _rc.c.language, _b.c.poll).join(_b, _b.c.id == _rc.c.broadcast_id)
              .where(_rc.c.registrant_id == bindparam("_id"), _b.c.poll.is_not(None),
                     _b.c.status.not_in(("cancelled", "withdrawn")), _rc.c.last_sent_at > bindparam("_since"))
              .order_by(_rc.c.last_sent_at.desc()).limit(1))
_LOAD_CASES = (select(schema.cases.c.category, schema.cases.c.status)
               .where(schema.cases.c.registrant_id == bindparam("_id")).order_by(schema.cases.c.id))


async def find_identity(conn: AsyncConnection, keys: KeyRing, channel: str, address: str):  # type: ignore[no-untyped-def]
    """The identity row for an address, by blind index."""
    bidx = keys.blind_index(identity_kind(channel), address)
    return (await conn.execute(_FIND_IDENTITY, {"_bidx": bidx})).first()


def _inbound_row(keys: KeyRing, provider: str, message: Inbound, identity: Any) -> dict[str, object]:
    """The inbound row for a message (text sealed), linked to its identity when it is known."""
    meta: dict[str, object] = {k: v for k, v in (("opt_out", message.opt_out), ("language_hint", message.language_hint),
                                                 ("payload", message.payload)) if v}
    text = message.text
    if message.contact_phone:  # a shared contact: the number is the message, sealed like any text
        meta["contact"] = True
        text = message.contact_phone
    body = keys.encrypt(text, inbound_aad({"provider": provider, "provider_id": message.provider_id}))
    return {
        "provider": provider, "provider_id": message.provider_id, "channel": message.channel, "body_ct": body,
        "meta": meta, "received_at": message.received_at,
        "registrant_id": identity.registrant_id if identity else None, "identity_id": identity.id if identity else None,
    }


async def store_inbound(conn: AsyncConnection, keys: KeyRing,
                        messages: list[tuple[str, Inbound]]) -> list[Stored | None]:
    """Store ``(provider, message)`` pairs once each (dedupe on provider + id), in the caller's transaction;
    find or create each sender's registrant and identity.

    The same rows and answers as storing them one by one in order (a message seen before, earlier
    in the list included, gives None), in a handful of statements whatever the number of messages:
    one look-up of every address, one insert, and one update each for identities and registrants.
    People writing for the first time cost two more: their registrants, then their identities.
    """
    if not messages:
        return []
    bidxs = [keys.blind_index(identity_kind(m.channel), m.address) for _, m in messages]
    found = (await conn.execute(_FIND_IDENTITIES, {"_bidxs": sorted(set(bidxs))})).all()
    known: dict[bytes, Any] = {row.bidx: row for row in found}
    firsts: dict[tuple[str, str], int] = {}
    rows = []
    for n, (provider, message) in enumerate(messages):
        if (provider, message.provider_id) not in firsts:  # the same message twice in one batch: store once
            firsts[provider, message.provider_id] = n
            rows.append(_inbound_row(keys, provider, message, known.get(bidxs[n])))
    inserted = {(r.provider, r.provider_id): r.id
                for r in (await conn.execute(_INSERT_INBOUNDS[conn.dialect.name], rows)).all()}
    now = _now()
    results: list[Stored | None] = [None] * len(messages)
    link: list[dict[str, int]] = []  # inbound rows of new people
    touched: dict[int, tuple[Any, Inbound]] = {}  # identity id -> (identity row, last message)
    fresh = await _new_people(conn, keys, messages, bidxs, inserted, firsts, known, now)
    for (provider, message), bidx, n in zip(messages, bidxs, range(len(messages)), strict=True):
        inbound_id = inserted.get((provider, message.provider_id))
        if inbound_id is None or firsts[provider, message.provider_id] != n:
            continue  # seen before: the provider retried
        identity = known[bidx]
        registrant_id, identity_id = identity.registrant_id, identity.id
        if isinstance(identity, _NewIdentity):  # made in this batch: link the row to it
            link.append({"_id": inbound_id, "registrant_id": registrant_id, "identity_id": identity_id})
        if fresh.get(bidx) != n:  # not the message that made the person: bring theirs up to date
            first_seen = touched.get(identity_id, (identity, None))[0]
            touched[identity_id] = (first_seen, message)
        results[n] = Stored(inbound_id, registrant_id, identity_id)
    if link:
        await conn.execute(_UPDATE_INBOUND, link)
    if touched:
        plain, refilled = [], []
        for identity_id, (identity, message) in touched.items():
            values = {"_id": identity_id, "last_channel": message.channel, "last_used_at": now, "reachable": True}
            if isinstance(identity, _NewIdentity) or identity.address_ct:
                plain.append(values)
            else:  # an opt-out marker writing again: we may hold the address again
                refilled.append({**values, "address_ct": keys.encrypt(
                    message.address, identity_aad({"bidx": identity.bidx}))})
        for group in (plain, refilled):
            if group:
                await conn.execute(_UPDATE_IDENTITY, group)
        registrants = {identity.registrant_id for identity, _ in touched.values()}
        await conn.execute(_UPDATE_REGISTRANT, [{"_id": r, "last_seen_at": now} for r in sorted(registrants)])
    return results


async def _new_people(conn: AsyncConnection, keys: KeyRing, messages: list[tuple[str, Inbound]], bidxs: list[bytes],
                      inserted: dict[tuple[str, str], int], firsts: dict[tuple[str, str], int],
                      known: dict[bytes, Any], now: datetime) -> dict[bytes, int]:
    """A registrant and an identity for each person writing for the first time, all in two statements;
    added to ``known``. Returns, per new blind index, the position of the message that made the person."""
    fresh: dict[bytes, int] = {}
    for n, ((provider, message), bidx) in enumerate(zip(messages, bidxs, strict=True)):
        stored = (provider, message.provider_id) in inserted and firsts[provider, message.provider_id] == n
        if stored and bidx not in known and bidx not in fresh:
            fresh[bidx] = n
    if not fresh:
        return fresh
    registrant_ids = (await conn.execute(_NEW_REGISTRANTS, [{
        "step": Step.NEW.value, "context": {}, "consented": False, "opted_out": False, "created_at": now,
        "last_seen_at": now} for _ in fresh])).scalars().all()
    identity_rows = []
    for (bidx, n), registrant_id in zip(fresh.items(), registrant_ids, strict=True):
        message = messages[n][1]
        identity_rows.append({
            "registrant_id": registrant_id, "kind": identity_kind(message.channel), "bidx": bidx,
            "address_ct": keys.encrypt(message.address, identity_aad({"bidx": bidx})),
            "last_channel": message.channel, "preferred_channel": message.channel, "reachable": True,
            "created_at": now, "last_used_at": now})
    identity_ids = (await conn.execute(_NEW_IDENTITIES, identity_rows)).scalars().all()
    for bidx, registrant_id, identity_id in zip(fresh, registrant_ids, identity_ids, strict=True):
        known[bidx] = _NewIdentity(int(identity_id), int(registrant_id))
    return fresh


@dataclass(frozen=True, slots=True)
class _NewIdentity:
    """An identity made earlier in the same batch (its address is held)."""

    id: int
    registrant_id: int


async def load_state(conn: AsyncConnection, keys: KeyRing, registrant_id: int,
                     previous_message_at: datetime | None = None, default_language: str = "en") -> State | None:
    """A registrant's conversation state with their decrypted profile, addresses, open check-in and poll."""
    row = (await conn.execute(_LOAD_REGISTRANT, {"_id": registrant_id})).first()
    if row is None:
        return None
    secrets_ = {
        s.field: keys.decrypt(s.value_ct, secret_aad({"field": s.field, "registrant_id": registrant_id}))
        for s in (await conn.execute(_LOAD_SECRETS, {"_id": registrant_id})).all()
    }
    addresses = tuple(
        (i.last_channel, keys.decrypt(i.address_ct, identity_aad({"bidx": i.bidx})))
        for i in (await conn.execute(_LOAD_IDENTITIES, {"_id": registrant_id})).all()
        if i.address_ct
    )
    context = row.context or {}
    check_in, check_in_latest = None, False
    cases: tuple[tuple[str, str], ...] = ()
    poll: OpenPoll | None = None
    if row.consented:
        check_in, check_in_latest = await _open_check_in(conn, registrant_id, previous_message_at)
        sent = (await conn.execute(_OPEN_POLL, {"_id": registrant_id, "_since": _now() - CHECK_IN_OPEN})).first()
        if sent is not None:
            poll = open_poll(int(sent.broadcast_id), sent.poll, sent.language, default_language)
        cases = tuple((c.category, c.status) for c in (await conn.execute(_LOAD_CASES, {"_id": registrant_id})).all())
    last = (row.last_check_in, aware(row.last_check_in_at)) if row.last_check_in and row.last_check_in_at else None
    return State(
        step=Step(row.step),
        profile=Profile(
            language=row.language, area_id=row.area_id, nationality=row.nationality, gender=row.gender,
            age_band=row.age_band, household_size=row.household_size,
            first_name=secrets_.get("first_name"), family_contact=secrets_.get("family_contact"),
            employer=secrets_.get("employer"), recruitment_agency=secrets_.get("recruitment_agency"),
            share_family=row.share_family, family_language=row.family_language,
        ),
        consented=row.consented,
        consent_at=row.consent_at,
        opted_out=row.opted_out,
        menu=tuple(context.get("menu", ())),
        editing=context.get("editing"),
        resume=Step(context["resume"]) if context.get("resume") else None,
        addresses=addresses,
        area_hint=context.get("area_hint"),
        check_in=check_in,
        check_in_latest=check_in_latest,
        last_check_in=last,
        cases=cases,
        poll=poll,
        source_id=row.source_id,
    )


async def _open_check_in(conn: AsyncConnection, registrant_id: int,
                         previous_message_at: datetime | None) -> tuple[int | None, bool]:
    """The newest unanswered check-in sent to the registrant, and whether it came after their last message."""
    row = (await conn.execute(_OPEN_CHECK_IN, {"_id": registrant_id, "_since": _now() - CHECK_IN_OPEN})).first()
    if row is None:
        return None, False
    latest = previous_message_at is None or aware(row.last_sent_at) > aware(previous_message_at)
    return int(row.broadcast_id), latest


async def save_state(conn: AsyncConnection, keys: KeyRing, registrant_id: int, before: State, after: State,
                     at: datetime) -> None:
    """Write what changed between two states; a changed profile counts as confirmed."""
    resume = after.resume.value if after.resume else None
    context = {"menu": list(after.menu), "editing": after.editing, "resume": resume, "area_hint": after.area_hint}
    values: dict[str, object] = {
        "step": after.step.value, "context": context, "consented": after.consented, "opted_out": after.opted_out,
        "source_id": after.source_id,
    }
    values.update({name: getattr(after.profile, name) for name in COARSE_FIELDS})
    if after.profile != before.profile and after.registered:
        values["confirmed_at"] = at
    await conn.execute(_UPDATE_REGISTRANT, {"_id": registrant_id, **values})
    for name in SECRET_FIELDS:
        old, new = getattr(before.profile, name), getattr(after.profile, name)
        if old == new:
            continue
        await conn.execute(_DELETE_SECRET, {"_id": registrant_id, "_field": name})
        if new is not None:
            sealed = keys.encrypt(new, secret_aad({"field": name, "registrant_id": registrant_id}))
            await conn.execute(_INSERT_SECRET, {"registrant_id": registrant_id, "field": name, "value_ct": sealed})


async def record_consent(conn: AsyncConnection, registrant_id: int, notice_version: str, language: str,
                         channel: str, at: datetime, *, method: str = "text", recorded_by: str | None = None) -> None:
    """Keep the proof of consent: when, to which notice, in which language, on which channel, how and by whom."""
    await conn.execute(schema.consents.insert().values(
        registrant_id=registrant_id, notice_version=notice_version, language=language, channel=channel, given_at=at,
        method=method, recorded_by=recorded_by))
    await conn.execute(update(schema.registrants).where(schema.registrants.c.id == registrant_id)
                       .values(confirmed_at=at))


async def forget(conn: AsyncConnection, registrant_id: int) -> None:
    """Consent refused: keep only an opt-out marker (the blind index) and nothing readable."""
    await _erase_messages(conn, registrant_id)
    await conn.execute(delete(schema.profile_secrets).where(schema.profile_secrets.c.registrant_id == registrant_id))
    await conn.execute(delete(schema.consents).where(schema.consents.c.registrant_id == registrant_id))
    await conn.execute(update(schema.identities).where(schema.identities.c.registrant_id == registrant_id)
                       .values(address_ct=b""))
    await conn.execute(update(schema.registrants).where(schema.registrants.c.id == registrant_id).values(
        step=Step.NEW.value, context={}, consented=False, opted_out=True, area_id=None, nationality=None,
        gender=None, age_band=None, household_size=None, confirmed_at=None, source_id=None))


async def erase(conn: AsyncConnection, registrant_id: int) -> None:
    """DELETE: remove the registrant and every message body linked to them."""
    await _erase_messages(conn, registrant_id)
    await conn.execute(delete(schema.registrants).where(schema.registrants.c.id == registrant_id))


async def _erase_messages(conn: AsyncConnection, registrant_id: int) -> None:
    await conn.execute(update(schema.inbound).where(schema.inbound.c.registrant_id == registrant_id)
                       .values(body_ct=None, meta={}, registrant_id=None, identity_id=None))
    await conn.execute(delete(schema.outbox).where(schema.outbox.c.registrant_id == registrant_id))


async def link_phone(conn: AsyncConnection, keys: KeyRing, registrant_id: int, phone: str) -> int | None:
    """Join a phone number the registrant shared as their own to their registration.

    A registration that only that number had (made by SMS before) is merged in: its number moves
    over and its profile is erased. Returns the id of the registrant merged away, if any.
    """
    bidx = keys.blind_index("phone", phone)
    now = _now()
    existing = (await conn.execute(_FIND_IDENTITY, {"_bidx": bidx})).first()
    if existing is None:
        await conn.execute(_NEW_IDENTITY, {
            "registrant_id": registrant_id, "kind": "phone", "bidx": bidx,
            "address_ct": keys.encrypt(phone, identity_aad({"bidx": bidx})), "last_channel": "sms",
            # Never written from yet: a fallback, so the channel the person uses stays the one we use.
            "preferred_channel": "sms", "reachable": True, "created_at": now, "last_used_at": NEVER})
        return None
    if existing.registrant_id == registrant_id:
        return None
    other = existing.registrant_id
    other_opted_out = (await conn.execute(select(_r.c.opted_out).where(_r.c.id == other))).scalar()
    moved: dict[str, object] = {"registrant_id": registrant_id,
                                "address_ct": keys.encrypt(phone, identity_aad({"bidx": bidx}))}
    if other_opted_out:  # a STOP sent from that number still holds for it
        moved.update(reachable=False, error_code="stop")
    await conn.execute(_UPDATE_IDENTITY, {"_id": existing.id, **moved})
    remaining = (await conn.execute(select(_i.c.id).where(_i.c.registrant_id == other))).first()
    if remaining is None:
        await erase(conn, other)
        return int(other)
    return None
