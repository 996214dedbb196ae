"""Delivers queued webhook notifications: signed, retried with exponential backoff, each attempt logged.

The queue is the ``webhook_deliveries`` table (see :mod:`campaigns.webhooks`): a worker claims due rows
with a lease, so several workers never post the same notification at once and a crash only delays it.
Each body is signed like Stripe's: ``X-Beacon-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under the subscription's secret>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from sqlalchemy import or_, select, update

from campaigns.webhooks import payload_aad, secret_aad
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder

log = structlog.get_logger("beacon.webhooks")
MAX_ATTEMPTS = 8
MAX_DELAY = timedelta(hours=6)
LEASE = timedelta(seconds=60)
BATCH = 50
TIMEOUT = aiohttp.ClientTimeout(total=10)
POLL_SECONDS = 1.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Beacon-Signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookSender:
    """Posts due webhook deliveries until stopped."""

    def __init__(self, db: Database, keys: KeyHolder, *, retry_seconds: float) -> None:
        self.db = db
        self.keys = keys
        self.retry_seconds = retry_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver whatever is due, then wait for a wake-up or the next poll, until ``stop``."""
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            while not stop.is_set():
                try:
                    await self.deliver_due(session)
                except Exception:  # noqa: BLE001 - the next poll tries again
                    log.exception("webhooks.run_failed")
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
                except TimeoutError:
                    pass

    async def _claim(self) -> list[Any]:
        d, w = schema.webhook_deliveries.c, schema.webhooks.c
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            query = (select(d.id).where(d.status == "pending", d.next_attempt_at <= now,
                                        or_(d.lease_until.is_(None), d.lease_until < now))
                     .order_by(d.id).limit(BATCH))
            if not self.db.sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list((await conn.execute(query)).scalars().all())
            if not ids:
                return []
            await conn.execute(update(schema.webhook_deliveries).where(d.id.in_(ids)).values(lease_until=now + LEASE))
            return list((await conn.execute(
                select(d.id, d.event, d.event_id, d.payload_ct, d.attempts, w.url, w.secret_ct, w.id.label("hook"))
                .join(schema.webhooks, w.id == d.webhook_id).where(d.id.in_(ids)).order_by(d.id))).all())

    async def deliver_due(self, session: aiohttp.ClientSession) -> int:
        """Post every due delivery once; returns how many were tried."""
        claimed = await self._claim()
        for row in claimed:
            await self._deliver(session, row)
        return len(claimed)

    async def _deliver(self, session: aiohttp.ClientSession, row: Any) -> None:
        ring = self.keys.ring
        body = ring.decrypt(row.payload_ct, payload_aad(row.event_id)).encode()
        secret = ring.decrypt(row.secret_ct, secret_aad(row.hook))
        headers = {"Content-Type": "application/json", "User-Agent": "Beacon-Webhooks/1",
                   "X-Beacon-Event": row.event, "X-Beacon-Delivery": row.event_id,
                   "X-Beacon-Signature": signature(secret, int(time.time()), body)}
        status_code: int | None = None
        error: str | None = None
        try:
            async with session.post(row.url, data=body, headers=headers, allow_redirects=False) as response:
                status_code = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        await self._record(row, status_code, error)

    async def _record(self, row: Any, status_code: int | None, error: str | None) -> None:
        d = schema.webhook_deliveries.c
        now = datetime.now(UTC)
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "status_code": status_code, "last_attempt_at": now,
                                  "lease_until": None, "error": error}
        if status_code is not None and 200 <= status_code < 300:
            values.update(status="delivered", delivered_at=now, payload_ct=None, error=None)
        elif attempts >= MAX_ATTEMPTS:
            values.update(status="failed", payload_ct=None)
            log.warning("webhook.given_up", delivery=row.id, status_code=status_code, error=error)
        else:
            delay = min(self.retry_seconds * 2 ** (attempts - 1), MAX_DELAY.total_seconds())
            values["next_attempt_at"] = now + timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311
            log.info("webhook.retry", delivery=row.id, status_code=status_code, error=error, attempts=attempts)
        async with self.db.write() as conn:
            await conn.execute(update(schema.webhook_deliveries).where(d.id == row.id).values(**values))
