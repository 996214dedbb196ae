"""What the conversation's effects do to the registry, inside the message's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import machine
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
    Reply,
    RevokeShareCodes,
    State,
)
from campaigns import cases, family
from campaigns.outbox import Draft
from registry import audit, schema, store
from registry.crypto import KeyRing


@dataclass
class Outcome:
    """How the effects changed what happens next."""

    registrant_id: int | None
    identity_id: int | None
    saved: bool = True  # False when the registrant's row was reset or removed
    replies: list[Reply] = field(default_factory=list)  # replies only the registry could write (STATUS)
    drafts: list[Draft] = field(default_factory=list)  # messages to others (family contacts)


async def apply(conn: AsyncConnection, keys: KeyRing, effects: tuple[Effect, ...], *, row: Any, identity: Any,
                state: State, now: datetime, default_language: str, family_channel: str) -> Outcome:
    """Apply every effect of one transition, in order."""
    rid = row.registrant_id
    out = Outcome(rid, identity.id)
    r, rc = schema.registrants.c, schema.recipients.c
    for effect in effects:
        if isinstance(effect, GiveConsent):
            await store.record_consent(conn, rid, effect.notice_version, effect.language, row.channel, now)
            await audit.append(conn, "system", "consent.given", str(rid),
                               {"notice": effect.notice_version, "channel": row.channel})
        elif isinstance(effect, Decline):
            await store.forget(conn, rid)
            await audit.append(conn, "system", "consent.refused", str(rid))
            # The reply is not linked to the marker, so the sender empties it once it has left.
            out.registrant_id = out.identity_id = None
            out.saved = False
        elif isinstance(effect, Erase):
            await store.erase(conn, rid)
            await audit.append(conn, "system", "registrant.erased", str(rid), {"by": "registrant"})
            out.registrant_id = out.identity_id = None
            out.saved = False
        elif isinstance(effect, Confirm):
            await conn.execute(update(schema.registrants).where(r.id == rid).values(confirmed_at=now))
        elif isinstance(effect, RecordCheckIn):
            await conn.execute(update(schema.registrants).where(r.id == rid).values(
                last_check_in=effect.answer, last_check_in_at=now))
            if effect.broadcast_id is not None:
                await conn.execute(update(schema.recipients).where(
                    rc.broadcast_id == effect.broadcast_id, rc.registrant_id == rid
                ).values(answer=effect.answer, answered_at=now))
            out.drafts += await family.family_drafts(conn, keys, rid, effect.answer, now, family_channel)
        elif isinstance(effect, OpenCase):
            case_id = await cases.open_case(conn, rid, effect.broadcast_id, state.profile.area_id)
            await audit.append(conn, "system", "case.opened", str(case_id), {"registrant": rid})
        elif isinstance(effect, DescribeNeed):
            await cases.describe_need(conn, keys, rid, category=effect.category, details=effect.details)
        elif isinstance(effect, IssueShareCode):
            await family.issue_code(conn, keys, rid, effect.code)
            await audit.append(conn, "system", "share_code.issued", str(rid))
        elif isinstance(effect, RevokeShareCodes):
            await family.revoke_codes(conn, rid)
            await audit.append(conn, "system", "share_code.revoked", str(rid))
        elif isinstance(effect, LookUpStatus):
            found = await family.lookup(conn, keys, identity.bidx, effect.code)
            language = state.profile.language or default_language
            text = family.status_text(language, found.status, found.first_name, found.at) \
                if found.outcome == "found" else None
            out.replies.append(machine.status_reply(language, found.outcome, text))
        elif isinstance(effect, LinkPhone):
            merged = await store.link_phone(conn, keys, rid, effect.phone)
            await audit.append(conn, "system", "identity.linked", str(rid),
                               {"merged": merged} if merged else {})
    return out
