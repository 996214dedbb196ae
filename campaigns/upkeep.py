"""Periodic care of the registry: retention with warnings, and nudges to confirm details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from bot import texts
from campaigns import outbox
from registry import retention, schema
from registry.db import Database
from registry.keys import KeyHolder

NUDGE_BATCH = 1000


async def run_retention(db: Database, keys: KeyHolder, policy: retention.Policy,
                        default_language: str) -> retention.Report:
    """Apply the retention policy and warn those whose profile will expire soon."""
    report = await retention.apply(db, policy)
    if report.warnings_due:
        async with db.write() as conn:
            drafts = [await outbox.to_registrant(conn, keys.ring, rid, texts.EXPIRY_WARNING, default_language,
                                                 days=policy.warning_days) for rid in report.warnings_due]
            await outbox.enqueue(conn, keys.ring, [d for d in drafts if d is not None])
    return report


async def send_nudges(db: Database, keys: KeyHolder, confirm_after_days: int, default_language: str) -> int:
    """Ask people whose details were not confirmed for a while to confirm or UPDATE them (once per period)."""
    r = schema.registrants.c
    now = datetime.now(UTC)
    due_before = now - timedelta(days=confirm_after_days)
    async with db.write() as conn:
        not_nudged = or_(r.nudged_at.is_(None), r.nudged_at < due_before)
        candidates = (await conn.execute(select(r.id).where(
            r.consented.is_(True), r.opted_out.is_(False), r.confirmed_at < due_before, not_nudged)
            .limit(NUDGE_BATCH))).scalars().all()
        if not candidates:
            return 0
        # Claim them: with another process nudging at the same time, each person is claimed by one of the two
        # (PostgreSQL re-checks the condition on a row another transaction just changed).
        ids = (await conn.execute(update(schema.registrants).where(r.id.in_(candidates), not_nudged)
                                  .values(nudged_at=now).returning(r.id))).scalars().all()
        drafts = [await outbox.to_registrant(conn, keys.ring, rid, texts.CONFIRM_DETAILS, default_language)
                  for rid in ids]
        await outbox.enqueue(conn, keys.ring, [d for d in drafts if d is not None])
    return len(ids)
