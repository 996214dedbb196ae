"""Timing: APScheduler wakes the runners; every durable fact lives in the database.

A restart loses nothing: scheduled broadcasts are rows with a ``send_at``, a
fan-out interrupted by a crash has a cursor, reminders are counted per
recipient. The scheduler only decides *when* to look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select, update

from bot import texts
from bot.i18n import gettext_for
from bot.machine import check_in_buttons
from campaigns import broadcasts, outbox
from campaigns.family import family_drafts
from campaigns.outbox import Draft
from campaigns.sender import Sender
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder, identity_aad
from registry.times import aware

log = structlog.get_logger("beacon.scheduler")
REMINDER_BATCH = 500


class Runner:
    """Fans out due broadcasts and sends reminders, woken by the API or by the scheduler's ticks."""

    def __init__(self, db: Database, keys: KeyHolder, gazetteer: Gazetteer, sender: Sender, *,
                 default_language: str, family_channel: str | None, max_reminders: int = 2,
                 calls: bool = False) -> None:
        self.db = db
        self.keys = keys
        self.gazetteer = gazetteer
        self.sender = sender
        self.default_language = default_language
        self.max_reminders = max_reminders
        self.calls = calls  # a voice number places calls: reminders may go by phone call
        self.family_channel = family_channel
        self._wake = asyncio.Event()
        self.also_wake: list[Callable[[], None]] = []  # told on each wake(): e.g. the workers of other processes
        self._scheduler: AsyncIOScheduler | None = None

    def wake(self) -> None:
        """Look for due broadcasts now."""
        self._wake.set()
        for tell in self.also_wake:
            tell()

    def start_schedule(self, extra_jobs: Sequence[tuple[Callable[[], Awaitable[None]], int]] = ()) -> None:
        """Start APScheduler's ticks: broadcasts every 5 s, reminders every 30 s, plus extra (job, seconds)."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(self.wake, "interval", seconds=5, id="broadcasts", coalesce=True, max_instances=1)
        scheduler.add_job(self.send_reminders, "interval", seconds=30, id="reminders", coalesce=True,
                          max_instances=1)
        for job, seconds in extra_jobs:
            scheduler.add_job(job, "interval", seconds=seconds, coalesce=True, max_instances=1)
        scheduler.start()
        self._scheduler = scheduler

    def stop_schedule(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out due broadcasts whenever woken, until ``stop``."""
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("broadcasts.run_failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5)
            except TimeoutError:
                pass

    async def run_due(self) -> int:
        """Fan out every due broadcast to the end; returns how many recipients were queued."""
        queued = 0
        for broadcast_id in await broadcasts.due(self.db):
            while True:
                count = await broadcasts.fan_out_batch(self.db, self.keys.ring, self.gazetteer, broadcast_id,
                                                       self.default_language, calls=self.calls)
                if count is None:
                    break
                queued += count
                self.sender.wake()
        return queued

    async def send_reminders(self) -> int:
        """Re-ask check-in recipients who have not answered, on their other channel when they have one."""
        now = datetime.now(UTC)
        b, rc, i = schema.broadcasts.c, schema.recipients.c, schema.identities.c
        keys = self.keys.ring
        sent = 0
        async with self.db.write() as conn:
            query = (select(rc.broadcast_id, rc.registrant_id, rc.language, rc.reminders_sent, rc.last_sent_at,
                            rc.outbox_id, b.remind_after_minutes, b.send_at, b.call_reminders)
                     .join(schema.broadcasts, b.id == rc.broadcast_id)
                     .join(schema.registrants, schema.registrants.c.id == rc.registrant_id)
                     # invited people (vital interests) got the warning without the question: no reminder
                     .where(schema.registrants.c.consented.is_(True),
                            b.check_in.is_(True), b.remind_after_minutes.is_not(None),
                            b.status.in_(("sending", "sent")), rc.answer.is_(None),
                            rc.reminders_sent < self.max_reminders)
                     .order_by(rc.last_sent_at).limit(REMINDER_BATCH))
            if not self.db.sqlite:
                query = query.with_for_update(of=schema.recipients, skip_locked=True)
            rows = [r for r in (await conn.execute(query)).all()
                    if aware(r.last_sent_at) + timedelta(minutes=r.remind_after_minutes) <= now]
            for row in rows:
                first_identity = (await conn.execute(select(schema.outbox.c.identity_id).where(
                    schema.outbox.c.id == row.outbox_id))).scalar()
                identities = (await conn.execute(select(schema.identities).where(
                    i.registrant_id == row.registrant_id, i.reachable.is_(True), i.address_ct != b"")
                    .order_by(i.last_used_at.desc()))).all()
                if not identities:
                    continue
                other = [x for x in identities if x.id != first_identity]
                identity = other[0] if other else identities[0]
                address = keys.decrypt(identity.address_ct, identity_aad({"bidx": identity.bidx}))
                channel = outbox.delivery_channel(identity.last_channel, identity.preferred_channel, self.calls)
                if row.call_reminders and self.calls and identity.kind == "phone":
                    channel = ChannelKind.VOICE
                # A call reads the broadcast again and gathers the answer: it needs the broadcast's id.
                called = channel == ChannelKind.VOICE
                buttons = () if called else check_in_buttons(row.language)
                drafts = [Draft(row.registrant_id, identity.id, channel, address,
                                gettext_for(row.language, texts.REMINDER), buttons=buttons,
                                broadcast_id=row.broadcast_id if called else None)]
                if row.reminders_sent == 0:
                    drafts += await family_drafts(conn, keys, row.registrant_id, "no_reply", aware(row.send_at),
                                                  self.family_channel)
                await outbox.enqueue(conn, keys, drafts)
                await conn.execute(update(schema.recipients).where(
                    rc.broadcast_id == row.broadcast_id, rc.registrant_id == row.registrant_id
                ).values(reminders_sent=row.reminders_sent + 1, last_sent_at=now))
                sent += 1
        if sent:
            self.sender.wake()
        return sent

