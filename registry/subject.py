"""Subject access: everything Beacon holds about one person, for requests made outside the bot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema
from registry.case_files import view
from registry.crypto import KeyRing
from registry.keys import identity_aad, inbound_aad, outbox_aad, secret_aad
from registry.times import iso


async def registrant_for(conn: AsyncConnection, keys: KeyRing, kind: str, address: str) -> int | None:
    """The registrant an address belongs to, by blind index."""
    i = schema.identities.c
    found = (await conn.execute(select(i.registrant_id).where(
        i.bidx == keys.blind_index(kind, address)))).scalar()
    return int(found) if found is not None else None


async def export(conn: AsyncConnection, keys: KeyRing, registrant_id: int) -> dict[str, Any]:
    """Every row about one registrant, decrypted, as JSON-ready data."""
    r, i, ps = schema.registrants.c, schema.identities.c, schema.profile_secrets.c
    row = (await conn.execute(select(schema.registrants).where(r.id == registrant_id))).first()
    if row is None:
        return {}
    profile = {k: v for k, v in row._mapping.items() if k not in ("context",)}
    for key, value in list(profile.items()):
        if hasattr(value, "isoformat"):
            profile[key] = iso(value)
    for secret in (await conn.execute(select(schema.profile_secrets).where(ps.registrant_id == registrant_id))).all():
        profile[secret.field] = keys.decrypt(secret.value_ct, secret_aad(
            {"field": secret.field, "registrant_id": registrant_id}))
    identities = [
        {"channel": x.last_channel, "kind": x.kind, "preferred_channel": x.preferred_channel,
         "address": keys.decrypt(x.address_ct, identity_aad({"bidx": x.bidx})) if x.address_ct else None,
         "reachable": x.reachable, "created_at": iso(x.created_at), "last_used_at": iso(x.last_used_at)}
        for x in (await conn.execute(select(schema.identities).where(i.registrant_id == registrant_id))).all()
    ]
    consents = [
        {"notice_version": c.notice_version, "language": c.language, "channel": c.channel,
         "method": c.method or "text", "recorded_by": c.recorded_by,
         "given_at": iso(c.given_at), "withdrawn_at": iso(c.withdrawn_at)}
        for c in (await conn.execute(select(schema.consents).where(
            schema.consents.c.registrant_id == registrant_id))).all()
    ]
    inbound = [
        {"channel": m.channel, "received_at": iso(m.received_at),
         "text": keys.decrypt(m.body_ct, inbound_aad({"provider": m.provider, "provider_id": m.provider_id}))
         if m.body_ct else None}
        for m in (await conn.execute(select(schema.inbound).where(
            schema.inbound.c.registrant_id == registrant_id).order_by(schema.inbound.c.id))).all()
    ]
    outbound = [
        {"channel": m.channel, "status": m.status, "created_at": iso(m.created_at),
         "text": keys.decrypt(m.body_ct, outbox_aad("body")({"ref": m.ref})) if m.body_ct else None}
        for m in (await conn.execute(select(schema.outbox).where(
            schema.outbox.c.registrant_id == registrant_id).order_by(schema.outbox.c.id))).all()
    ]
    check_ins = [
        {"broadcast_id": x.broadcast_id, "answer": x.answer, "answered_at": iso(x.answered_at),
         "reminders_sent": x.reminders_sent, "poll_answer": x.poll_answer,
         "poll_answered_at": iso(x.poll_answered_at)}
        for x in (await conn.execute(select(schema.recipients).where(
            schema.recipients.c.registrant_id == registrant_id))).all()
    ]
    cases = [view(keys, c) for c in (await conn.execute(select(schema.cases).where(
        schema.cases.c.registrant_id == registrant_id))).all()]
    return {"registrant": profile, "identities": identities, "consents": consents, "messages_received": inbound,
            "messages_sent": outbound, "check_ins": check_ins, "cases": cases}
