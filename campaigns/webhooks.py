"""Outbound webhooks: subscriptions, and the events they are told of, queued in the caller's transaction.

An event is written to ``webhook_deliveries`` in the same transaction as the change it reports (a case
opened, a check-in recorded ...), so a notification is never lost nor sent for a change that rolled
back; :mod:`campaigns.webhook_sender` delivers the queue. Payloads carry ids and counts only, except
for case events to a subscription whose admin turned ``include_personal_data`` on: those carry the
case as the responder API shows it.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.vocabulary import Answer
from registry import case_files, schema
from registry.crypto import KeyRing
from registry.keys import webhook_payload_aad, webhook_secret_aad
from registry.times import iso

CASE_EVENTS = ("case.opened", "case.assigned", "case.closed")
EVENTS = (*CASE_EVENTS, "checkins.changed", "broadcast.finished")
DELIVERY_LOG = 200  # deliveries listed at most


def secret_aad(webhook_id: int) -> str:
    """The associated data sealing a subscription's secret."""
    return webhook_secret_aad({"id": webhook_id})


def payload_aad(event_id: str) -> str:
    """The associated data sealing a notification's body."""
    return webhook_payload_aad({"event_id": event_id})


def view(row: Any) -> dict[str, Any]:
    """A subscription as the API lists it (never its secret)."""
    return {"id": row.id, "url": row.url, "events": list(row.events),
            "include_personal_data": row.include_personal_data, "created_by": row.created_by,
            "created_at": iso(row.created_at)}


async def subscribe(conn: AsyncConnection, keys: KeyRing, *, url: str, events: list[str],
                    include_personal_data: bool, by: str) -> tuple[Any, str]:
    """A new subscription and its signing secret (shown once)."""
    w = schema.webhooks.c
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook_id = (await conn.execute(schema.webhooks.insert().values(
        url=url, events=events, secret_ct=b"", include_personal_data=include_personal_data, created_by=by,
        created_at=datetime.now(UTC)).returning(w.id))).scalar_one()
    await conn.execute(update(schema.webhooks).where(w.id == webhook_id).values(
        secret_ct=keys.encrypt(secret, secret_aad(int(webhook_id)))))
    row = (await conn.execute(select(schema.webhooks).where(w.id == webhook_id))).one()
    return row, secret


async def active(conn: AsyncConnection) -> list[Any]:
    """Subscriptions not deleted, oldest first."""
    w = schema.webhooks.c
    return list((await conn.execute(select(schema.webhooks).where(w.deleted_at.is_(None)).order_by(w.id))).all())


async def unsubscribe(conn: AsyncConnection, webhook_id: int) -> bool:
    """Stop a subscription; deliveries still waiting are given up (the log stays). False if unknown."""
    w, d = schema.webhooks.c, schema.webhook_deliveries.c
    done = (await conn.execute(update(schema.webhooks).where(w.id == webhook_id, w.deleted_at.is_(None))
                               .values(deleted_at=datetime.now(UTC)))).rowcount
    await conn.execute(update(schema.webhook_deliveries).where(d.webhook_id == webhook_id, d.status == "pending")
                       .values(status="failed", error="unsubscribed", payload_ct=None))
    return bool(done)


async def deliveries(conn: AsyncConnection, webhook_id: int) -> list[dict[str, Any]]:
    """The newest deliveries of a subscription: event, outcome, attempts and times; never the payload."""
    d = schema.webhook_deliveries.c
    rows = (await conn.execute(select(schema.webhook_deliveries).where(d.webhook_id == webhook_id)
                               .order_by(d.id.desc()).limit(DELIVERY_LOG))).all()
    return [{"id": r.id, "event": r.event, "event_id": r.event_id, "status": r.status, "status_code": r.status_code,
             "attempts": r.attempts, "error": r.error, "created_at": iso(r.created_at),
             "last_attempt_at": iso(r.last_attempt_at), "delivered_at": iso(r.delivered_at),
             "next_attempt_at": iso(r.next_attempt_at) if r.status == "pending" else None} for r in rows]


async def emit(conn: AsyncConnection, keys: KeyRing, event: str, data: dict[str, Any],
               personal: dict[str, Any] | None = None) -> int:
    """Queue ``event`` for every subscription to it; ``personal`` replaces ``data`` for those allowed it."""
    now = datetime.now(UTC)
    rows = []
    for hook in await active(conn):
        if event not in hook.events:
            continue
        body = personal if personal is not None and hook.include_personal_data and event in CASE_EVENTS else data
        event_id = secrets.token_hex(16)
        payload = json.dumps({"id": event_id, "event": event, "created_at": iso(now), "data": body},
                             ensure_ascii=False, sort_keys=True)
        rows.append({"webhook_id": hook.id, "event": event, "event_id": event_id,
                     "payload_ct": keys.encrypt(payload, payload_aad(event_id)), "status": "pending", "attempts": 0,
                     "next_attempt_at": now, "created_at": now})
    if rows:
        await conn.execute(schema.webhook_deliveries.insert(), rows)
    return len(rows)


async def case_event(conn: AsyncConnection, keys: KeyRing, event: str, case_id: int) -> None:
    """Queue a case event: its id, status, area and category; the whole case where personal data is allowed."""
    row = (await conn.execute(select(schema.cases).where(schema.cases.c.id == case_id))).first()
    if row is None:
        return
    plain = {"case": {"id": row.id, "status": row.status, "area": row.area_id, "category": row.category,
                      "assignee": row.assignee, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}}
    personal = {"case": case_files.view(keys, row)}
    await emit(conn, keys, event, plain, personal)


async def check_in_event(conn: AsyncConnection, keys: KeyRing, broadcast_id: int) -> None:
    """Queue the check-in tally of a broadcast after an answer changed it."""
    rc = schema.recipients.c
    total, safe, need = (await conn.execute(select(
        func.count(), func.sum(case((rc.answer == Answer.SAFE, 1), else_=0)),
        func.sum(case((rc.answer == Answer.NEED_HELP, 1), else_=0))).where(rc.broadcast_id == broadcast_id))).one()
    total, safe, need = int(total or 0), int(safe or 0), int(need or 0)
    await emit(conn, keys, "checkins.changed", {"broadcast_id": broadcast_id, "counts": {
        "recipients": total, "safe": safe, "need_help": need, "no_reply": total - safe - need}})
