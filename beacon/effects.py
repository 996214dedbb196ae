"""What the conversation's effects do to the registry, inside the message's transaction.

:data:`HANDLERS` maps each effect type to the function that carries it out; :func:`apply` runs
them in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    PreferCalls,
    RecordCheckIn,
    RecordPollAnswer,
    Reply,
    RevokeShareCodes,
    State,
)
from campaigns import cases, family, webhooks
from campaigns.outbox import Draft
from domain.vocabulary import ChannelKind
from registry import audit, schema, store
from registry.crypto import KeyRing


@dataclass
class AppliedEffects:
    """How the effects changed what happens next: whom replies go to, whether the state is kept, what more to send."""

    registrant_id: int | None
    identity_id: int | None
    saved: bool = True  # False when the registrant's row was reset or removed
    replies: list[Reply] = field(default_factory=list)  # replies only the registry could write (STATUS)
    drafts: list[Draft] = field(default_factory=list)  # messages to others (family contacts)


@dataclass(frozen=True)
class Context:
    """The message whose effects are applied, and where to apply them."""

    conn: AsyncConnection
    keys: KeyRing
    row: Any  # the inbound row
    identity: Any  # the identity row it came from
    state: State  # the conversation state before the transition
    now: datetime
    default_language: str
    family_channel: str | None

    @property
    def registrant_id(self) -> int:
        return int(self.row.registrant_id)


Handler = Callable[[Context, Any, AppliedEffects], Awaitable[None]]


async def _give_consent(ctx: Context, effect: GiveConsent, out: AppliedEffects) -> None:
    rid, channel = ctx.registrant_id, ctx.row.channel
    await store.record_consent(ctx.conn, rid, effect.notice_version, effect.language, channel, ctx.now,
                               method=effect.method)
    await audit.append(ctx.conn, "system", "consent.given", str(rid),
                       {"notice": effect.notice_version, "channel": channel, "method": effect.method})


def _forgotten(out: AppliedEffects) -> None:
    # The reply is not linked to the registrant any more, so the sender empties it once it has left.
    out.registrant_id = out.identity_id = None
    out.saved = False


async def _decline(ctx: Context, effect: Decline, out: AppliedEffects) -> None:
    await store.forget(ctx.conn, ctx.registrant_id)
    await audit.append(ctx.conn, "system", "consent.refused", str(ctx.registrant_id))
    _forgotten(out)


async def _erase(ctx: Context, effect: Erase, out: AppliedEffects) -> None:
    await store.erase(ctx.conn, ctx.registrant_id)
    await audit.append(ctx.conn, "system", "registrant.erased", str(ctx.registrant_id), {"by": "registrant"})
    _forgotten(out)


async def _confirm(ctx: Context, effect: Confirm, out: AppliedEffects) -> None:
    r = schema.registrants.c
    await ctx.conn.execute(update(schema.registrants).where(r.id == ctx.registrant_id).values(confirmed_at=ctx.now))


async def _record_check_in(ctx: Context, effect: RecordCheckIn, out: AppliedEffects) -> None:
    rid = ctx.registrant_id
    r, rc = schema.registrants.c, schema.recipients.c
    await ctx.conn.execute(update(schema.registrants).where(r.id == rid).values(
        last_check_in=effect.answer, last_check_in_at=ctx.now))
    if effect.broadcast_id is not None:
        await ctx.conn.execute(update(schema.recipients).where(
            rc.broadcast_id == effect.broadcast_id, rc.registrant_id == rid
        ).values(answer=effect.answer, answered_at=ctx.now))
        await webhooks.check_in_event(ctx.conn, ctx.keys, effect.broadcast_id)
    out.drafts += await family.family_drafts(ctx.conn, ctx.keys, rid, effect.answer, ctx.now, ctx.family_channel)


async def _record_poll_answer(ctx: Context, effect: RecordPollAnswer, out: AppliedEffects) -> None:
    rc = schema.recipients.c
    await ctx.conn.execute(update(schema.recipients).where(
        rc.broadcast_id == effect.broadcast_id, rc.registrant_id == ctx.registrant_id
    ).values(poll_answer=effect.option, poll_answered_at=ctx.now))


async def _open_case(ctx: Context, effect: OpenCase, out: AppliedEffects) -> None:
    already = await cases.latest_case(ctx.conn, ctx.registrant_id)
    case_id = await cases.open_case(ctx.conn, ctx.registrant_id, effect.broadcast_id, ctx.state.profile.area_id)
    await audit.append(ctx.conn, "system", "case.opened", str(case_id), {"registrant": ctx.registrant_id})
    if already is None:
        await webhooks.case_event(ctx.conn, ctx.keys, "case.opened", case_id)


async def _describe_need(ctx: Context, effect: DescribeNeed, out: AppliedEffects) -> None:
    await cases.describe_need(ctx.conn, ctx.keys, ctx.registrant_id, category=effect.category, details=effect.details)


async def _issue_share_code(ctx: Context, effect: IssueShareCode, out: AppliedEffects) -> None:
    await family.issue_code(ctx.conn, ctx.keys, ctx.registrant_id, effect.code)
    await audit.append(ctx.conn, "system", "share_code.issued", str(ctx.registrant_id))


async def _revoke_share_codes(ctx: Context, effect: RevokeShareCodes, out: AppliedEffects) -> None:
    await family.revoke_codes(ctx.conn, ctx.registrant_id)
    await audit.append(ctx.conn, "system", "share_code.revoked", str(ctx.registrant_id))


async def _look_up_status(ctx: Context, effect: LookUpStatus, out: AppliedEffects) -> None:
    found = await family.lookup(ctx.conn, ctx.keys, ctx.identity.bidx, effect.code, ctx.now)
    language = ctx.state.profile.language or ctx.default_language
    text = family.status_text(language, found.status, found.first_name, found.at) \
        if found.outcome == "found" else None
    out.replies.append(machine.status_reply(language, found.outcome, text))


async def _link_phone(ctx: Context, effect: LinkPhone, out: AppliedEffects) -> None:
    merged = await store.link_phone(ctx.conn, ctx.keys, ctx.registrant_id, effect.phone)
    await audit.append(ctx.conn, "system", "identity.linked", str(ctx.registrant_id),
                       {"merged": merged} if merged else {})


async def _prefer_calls(ctx: Context, effect: PreferCalls, out: AppliedEffects) -> None:
    i = schema.identities.c
    # Back to texts: where they write from, or SMS to the phone they call from.
    channel = ChannelKind.VOICE if effect.on else (ChannelKind.SMS if ctx.row.channel == ChannelKind.VOICE
                                                   else ctx.row.channel)
    await ctx.conn.execute(update(schema.identities).where(i.id == ctx.identity.id).values(preferred_channel=channel))
    await audit.append(ctx.conn, "system", "channel.preferred", str(ctx.registrant_id), {"channel": channel})


HANDLERS: dict[type[Effect], Handler] = {
    GiveConsent: _give_consent,
    Decline: _decline,
    Erase: _erase,
    Confirm: _confirm,
    RecordCheckIn: _record_check_in,
    OpenCase: _open_case,
    DescribeNeed: _describe_need,
    IssueShareCode: _issue_share_code,
    RevokeShareCodes: _revoke_share_codes,
    LookUpStatus: _look_up_status,
    LinkPhone: _link_phone,
    RecordPollAnswer: _record_poll_answer,
    PreferCalls: _prefer_calls,
}


async def apply(conn: AsyncConnection, keys: KeyRing, effects: tuple[Effect, ...], *, row: Any, identity: Any,
                state: State, now: datetime, default_language: str, family_channel: str | None) -> AppliedEffects:
    """Apply every effect of one transition, in order."""
    ctx = Context(conn, keys, row, identity, state, now, default_language, family_channel)
    out = AppliedEffects(row.registrant_id, identity.id)
    for effect in effects:
        await HANDLERS[type(effect)](ctx, effect, out)
    return out
