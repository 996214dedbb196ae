"""Claiming stored inbound messages for processing, a batch at a time.

A batch of waiting messages is claimed inside the transaction that processes it, in four statements
whatever its size (instead of four per message):

1. the batch's rows give the people who sent them;
2. those people's registrant rows are locked (``FOR UPDATE`` on PostgreSQL; SQLite has one writer
   anyway), in registrant-id order, so two workers claiming overlapping batches take the locks in the
   same order and cannot deadlock;
3. once the locks are held, each person's waiting messages up to the last one in the batch are loaded,
   with the time of the message before each (a correlated subquery): a later message that another
   worker happened to take first waits for the earlier ones, which are stepped first in this same
   transaction, so a person's messages are always stepped one at a time and in arrival order;
4. all of them are marked processed in one ``UPDATE ... RETURNING``, which re-checks each row
   (PostgreSQL re-reads a row changed meanwhile): what another process took first is left out.

A message whose step then fails rolls the whole transaction back, claims included: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema

_i = schema.inbound.c
_r = schema.registrants.c
_earlier = schema.inbound.alias("earlier")
_waiting = (_i.processed_at.is_(None), _i.failed_at.is_(None))

# Built once: every batch runs these.
_SENDERS = select(_i.id, _i.registrant_id).where(_i.id.in_(bindparam("_ids", expanding=True)), *_waiting)
_LOCK = select(_r.id).where(_r.id.in_(bindparam("_people", expanding=True))).order_by(_r.id).with_for_update()
# The time of the message before (processed or not), as the conversation's check-in window needs it.
_PREVIOUS = (select(func.max(_earlier.c.received_at))
             .where(_earlier.c.registrant_id == _i.registrant_id, _earlier.c.id < _i.id)
             .scalar_subquery().label("previous_at"))
_LOAD = select(schema.inbound, _PREVIOUS).where(
    or_(_i.id.in_(bindparam("_ids", expanding=True)),
        _i.registrant_id.in_(bindparam("_people", expanding=True)) & (_i.id <= bindparam("_last"))),
    *_waiting).order_by(_i.id)
_LOAD_ALONE = select(schema.inbound, _PREVIOUS).where(_i.id.in_(bindparam("_ids", expanding=True)),
                                                      *_waiting).order_by(_i.id)
_MARK = (update(schema.inbound).where(_i.id.in_(bindparam("_ids", expanding=True)), *_waiting)
         .values(processed_at=bindparam("processed_at")).returning(_i.id))


async def claim(conn: AsyncConnection, inbound_ids: Sequence[int], now: datetime) -> list[Any]:
    """Claim the waiting messages among ``inbound_ids`` (and the earlier waiting ones of the same people),
    inside ``conn``'s transaction: their inbound rows, each with ``previous_at`` (the time of its sender's
    message before it), in the order to step them.

    The order follows ``inbound_ids``; before each message come its sender's earlier waiting messages
    not yet in the list. Ids already processed, set aside or taken by another process are left out.
    """
    if not inbound_ids:
        return []
    ids = list(dict.fromkeys(inbound_ids))
    asked = set(ids)
    senders = (await conn.execute(_SENDERS, {"_ids": ids})).all()
    people = sorted({int(s.registrant_id) for s in senders if s.registrant_id})
    if people:
        await conn.execute(_LOCK, {"_people": people})
        # Up to each person's last message in the batch: later ones (not asked for) stay waiting.
        last: dict[int, int] = {}
        for s in senders:
            if s.registrant_id:
                last[int(s.registrant_id)] = max(last.get(int(s.registrant_id), 0), int(s.id))
        rows = [row for row in (await conn.execute(_LOAD, {"_ids": ids, "_people": people,
                                                           "_last": max(last.values())})).all()
                if not row.registrant_id or int(row.id) <= last.get(int(row.registrant_id), 0)
                or int(row.id) in asked]
    else:
        rows = list((await conn.execute(_LOAD_ALONE, {"_ids": ids})).all())
    if not rows:
        return []
    taken = set((await conn.execute(_MARK, {"_ids": [int(r.id) for r in rows], "processed_at": now}))
                .scalars().all())
    return _in_order(ids, [row for row in rows if int(row.id) in taken])


def _in_order(ids: list[int], rows: list[Any]) -> list[Any]:
    """The claimed ``rows`` (in id order) in the order of ``ids``, each person's earlier ones first."""
    by_id = {int(row.id): row for row in rows}
    waiting: dict[int, list[Any]] = {}  # a person's claimed messages, oldest first
    for row in rows:
        if row.registrant_id:
            waiting.setdefault(int(row.registrant_id), []).append(row)
    steps: list[Any] = []
    done: set[int] = set()
    for inbound_id in ids:
        row = by_id.get(inbound_id)
        if row is None or inbound_id in done:
            continue
        for earlier in waiting.get(int(row.registrant_id), []) if row.registrant_id else []:
            if int(earlier.id) >= inbound_id:
                break
            if int(earlier.id) not in done:
                done.add(int(earlier.id))
                steps.append(earlier)
        done.add(inbound_id)
        steps.append(row)
    return steps
