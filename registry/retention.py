"""Retention: keep nothing longer than needed.

The policy is applied by ``beacon retention run`` and by the scheduler. Each
run writes one audit entry with counts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.state import Step
from registry import audit, invitation_links, schema, store
from registry.db import Database

MONTH = timedelta(days=30)
# With several processes on PostgreSQL one applies the policy at a time; another that comes meanwhile skips
# its turn (the policy is applied again at its next tick), so no one is warned twice.
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(7466356)")
INVITED = Step.INVITED.value


@dataclass(frozen=True)
class Policy:
    """How long each kind of data is kept."""

    profile_months: int = 24  # a profile not confirmed for this long is erased
    warning_days: int = 30  # the registrant is warned this long before
    message_days: int = 90  # message bodies (inbound and outbox)
    case_months: int = 12  # closed cases
    lookup_days: int = 1  # STATUS look-up records (only kept for the guessing limit)
    unconsented_days: int = 30  # someone who never consented, after this long without writing
    invitation_days: int = 30  # an imported person who never said yes, after this long since the invitation


@dataclass(frozen=True)
class Report:
    """What one run did, in counts."""

    profiles_erased: int
    warnings_due: list[int]
    inbound_bodies: int
    outbox_bodies: int
    cases: int
    lookups: int
    unconsented_erased: int
    invitations_expired: int = 0
    webhook_deliveries: int = 0  # delivery log entries past the message period

    def counts(self) -> dict[str, int]:
        return {"profiles_erased": self.profiles_erased, "warnings": len(self.warnings_due),
                "inbound_bodies": self.inbound_bodies, "outbox_bodies": self.outbox_bodies,
                "cases": self.cases, "lookups": self.lookups, "unconsented_erased": self.unconsented_erased,
                "invitations_expired": self.invitations_expired, "webhook_deliveries": self.webhook_deliveries}


async def apply(db: Database, policy: Policy, now: datetime | None = None) -> Report:
    """Apply the policy once; returns the registrants who are due a warning (the caller sends it)."""
    now = now or datetime.now(UTC)
    r, i, o, c = schema.registrants.c, schema.inbound.c, schema.outbox.c, schema.cases.c
    expiry = now - policy.profile_months * MONTH
    async with db.write() as conn:
        if not db.sqlite and not (await conn.execute(_TRY_LOCK)).scalar():
            return Report(0, [], 0, 0, 0, 0, 0)  # another process is applying the policy at this moment
        stale = (await conn.execute(select(r.id).where(
            r.consented.is_(True), r.confirmed_at < expiry))).scalars().all()
        for registrant_id in stale:
            await store.erase(conn, registrant_id)
        warn_before = expiry + timedelta(days=policy.warning_days)
        due = (await conn.execute(select(r.id).where(
            r.consented.is_(True), r.confirmed_at < warn_before, r.confirmed_at >= expiry,
            (r.expiry_warned_at.is_(None)) | (r.expiry_warned_at < r.confirmed_at)))).scalars().all()
        if due:
            await conn.execute(update(schema.registrants).where(r.id.in_(due)).values(expiry_warned_at=now))
        bodies_before = now - timedelta(days=policy.message_days)
        inbound = await conn.execute(update(schema.inbound).where(
            i.received_at < bodies_before, i.body_ct.is_not(None)).values(body_ct=None))
        outbound = await conn.execute(update(schema.outbox).where(
            o.created_at < bodies_before, o.body_ct.is_not(None),
            o.status.in_(("sent", "delivered", "read", "failed", "undelivered", "cancelled"))
        ).values(body_ct=None, address_ct=None))
        cases = await conn.execute(delete(schema.cases).where(
            c.status == "closed", c.closed_at < now - policy.case_months * MONTH))
        lookups = await conn.execute(delete(schema.status_lookups).where(
            schema.status_lookups.c.at < now - timedelta(days=policy.lookup_days)))
        unconsented = await _erase_unconsented(conn, now - timedelta(days=policy.unconsented_days))
        expired = await _erase_invited(conn, now - timedelta(days=policy.invitation_days))
        await invitation_links.sweep(conn, now)  # their links expire with them
        d = schema.webhook_deliveries.c
        deliveries = await conn.execute(delete(schema.webhook_deliveries).where(
            d.created_at < bodies_before, d.status != "pending"))
        report = Report(len(stale), [int(x) for x in due], inbound.rowcount, outbound.rowcount, cases.rowcount,
                        lookups.rowcount, unconsented, expired, deliveries.rowcount)
        await audit.append(conn, "system", "retention.run", None, dict(report.counts()))
    return report


async def _erase_unconsented(conn: AsyncConnection, idle_before: datetime) -> int:
    """Erase people who never consented and have not written since ``idle_before``.

    Anyone who texts once (a family member's STATUS look-up too) gets a record holding their sealed
    address. Someone who opted out keeps only the marker an opt-out needs, the blind index of their
    address, so that their STOP still holds for that address; everyone else goes entirely.
    """
    r, i = schema.registrants.c, schema.identities.c
    holds_address = exists().where(i.registrant_id == r.id, i.address_ct != b"")
    idle = (await conn.execute(select(r.id, r.opted_out).where(
        r.consented.is_(False), r.step != INVITED, func.coalesce(r.last_seen_at, r.created_at) < idle_before,
        or_(r.opted_out.is_(False), holds_address)))).all()
    for registrant_id, opted_out in idle:
        if opted_out:
            await store.forget(conn, registrant_id)
        else:
            await store.erase(conn, registrant_id)
    return len(idle)


async def _erase_invited(conn: AsyncConnection, invited_before: datetime) -> int:
    """Erase imported people who were invited before ``invited_before`` and never said yes.

    Someone who said STOP keeps only the opt-out marker, so that a later list with their number
    cannot invite them again; everyone else goes entirely.
    """
    r = schema.registrants.c
    expired = (await conn.execute(select(r.id, r.opted_out).where(
        r.step == INVITED, r.consented.is_(False), r.invited_at < invited_before))).all()
    for registrant_id, opted_out in expired:
        if opted_out:
            await store.forget(conn, registrant_id)
        else:
            await store.erase(conn, registrant_id)
    return len(expired)
