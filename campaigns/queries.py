"""The read queries the console and the API show: broadcasts with their tallies, counts, the audience on offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from campaigns.broadcasts import SENT_STATES
from domain.vocabulary import Answer, CaseStatus, Delivery
from registry import schema
from registry.times import iso

WAITING = (Delivery.QUEUED, "claimed")  # claimed: a sender holds the row and has not sent it yet
DELIVERED = (Delivery.DELIVERED, Delivery.READ)
FAILED = (Delivery.FAILED, Delivery.UNDELIVERED)


def _tally(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


async def latest_broadcasts(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The latest broadcasts, newest first, with their tallies as ``broadcasts.summary`` gives them.

    One statement, and one more for the answers of any polls among them.
    """
    b, rc, o = schema.broadcasts.c, schema.recipients.c, schema.outbox.c
    latest = select(schema.broadcasts).order_by(b.id.desc()).limit(limit).subquery("latest")
    tallies = (
        select(
            rc.broadcast_id,
            func.count().label("recipients"),
            _tally(o.status.in_(WAITING)).label("queued"),
            _tally(o.status.in_(SENT_STATES)).label("sent"),
            _tally(o.status.in_(DELIVERED)).label("delivered"),
            _tally(o.status.in_(FAILED)).label("failed"),
            _tally(rc.answer == Answer.SAFE).label("safe"),
            _tally(rc.answer == Answer.NEED_HELP).label("need_help"),
        )
        .select_from(schema.recipients.outerjoin(schema.outbox, o.id == rc.outbox_id))
        .where(rc.broadcast_id.in_(select(latest.c.id)))
        .group_by(rc.broadcast_id)
        .subquery("tallies")
    )
    t = tallies.c
    rows = (await conn.execute(
        select(latest, t.recipients, t.queued, t.sent, t.delivered, t.failed, t.safe, t.need_help)
        .select_from(latest.outerjoin(tallies, t.broadcast_id == latest.c.id))
        .order_by(latest.c.id.desc())
    )).all()
    found = [_with_tallies(row) for row in rows]
    polls = {int(row.id): len(row.poll["options"]) for row in rows if row.poll}
    if polls:
        answers = (await conn.execute(
            select(rc.broadcast_id, rc.poll_answer, func.count())
            .where(rc.broadcast_id.in_(polls), rc.poll_answer.is_not(None))
            .group_by(rc.broadcast_id, rc.poll_answer))).all()
        chosen = {(int(broadcast), int(option)): int(n) for broadcast, option, n in answers}
        for item in found:
            if (options := polls.get(item["id"])) is not None:
                item["counts"]["poll"] = {str(n): chosen.get((item["id"], n), 0) for n in range(1, options + 1)}
    return found


def _with_tallies(row: Any) -> dict[str, Any]:
    recipients, queued, sent, delivered, failed, safe, need_help = (
        int(x or 0) for x in (row.recipients, row.queued, row.sent, row.delivered, row.failed, row.safe,
                              row.need_help))
    counts: dict[str, Any] = {"recipients": recipients, "queued": queued, "sent": sent, "delivered": delivered,
                              "failed": failed}
    if row.check_in:
        counts.update(safe=safe, need_help=need_help, no_reply=recipients - safe - need_help)
    return {
        "id": row.id, "status": row.status, "check_in": row.check_in,
        "texts": row.texts, "audience": row.audience,
        "send_at": iso(row.send_at), "created_at": iso(row.created_at),
        "created_by": row.created_by, "remind_after_minutes": row.remind_after_minutes,
        "call_reminders": row.call_reminders, "counts": counts,
    } | ({"poll": row.poll} if row.poll else {})


async def broadcast_total(conn: AsyncConnection) -> int:
    """How many broadcasts there have been."""
    return int((await conn.execute(select(func.count()).select_from(schema.broadcasts))).scalar_one())


async def open_case_total(conn: AsyncConnection) -> int:
    """How many need-help cases are not closed."""
    c = schema.cases.c
    return int((await conn.execute(
        select(func.count()).select_from(schema.cases).where(c.status != CaseStatus.CLOSED))).scalar_one())


async def latest_check_ins(conn: AsyncConnection, limit: int) -> list[tuple[int, datetime]]:
    """The latest check-in broadcasts, newest first, as (id, created_at)."""
    b = schema.broadcasts.c
    rows = await conn.execute(select(b.id, b.created_at).where(b.check_in.is_(True)).order_by(b.id.desc()).limit(limit))
    return [(int(row.id), row.created_at) for row in rows]


@dataclass(frozen=True)
class Registered:
    """How many people who can be reached speak each language and hold each nationality."""

    languages: dict[str, int]
    nationalities: dict[str, int]


async def registered(conn: AsyncConnection) -> Registered:
    """Consenting registrants who have not opted out, counted by language and by nationality (where given)."""
    r = schema.registrants.c
    live = (r.consented.is_(True), r.opted_out.is_(False))
    languages = await conn.execute(select(r.language, func.count()).where(
        *live, r.language.is_not(None)).group_by(r.language))
    nationalities = await conn.execute(select(r.nationality, func.count()).where(
        *live, r.nationality.is_not(None)).group_by(r.nationality))
    return Registered({code: int(n) for code, n in languages}, {code: int(n) for code, n in nationalities})


async def case_row(conn: AsyncConnection, case_id: int) -> Any:
    """One need-help case as stored (its details still sealed), or None."""
    return (await conn.execute(select(schema.cases).where(schema.cases.c.id == case_id))).first()
