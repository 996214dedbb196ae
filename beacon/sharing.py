"""Partner access: a partner's token fetches only inside its sharing arrangement, and every try is audited.

Handlers of the stats endpoints call :func:`admit` before counting and :func:`record_fetch` after;
anything outside the arrangement is a 403 whose attempt is audited with the arrangement's id. A partner's
table is the one of its arrangement's current update period (:func:`scheduled`), not counted on every call.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon.context import BEACON
from beacon.http import CALLER, api_error
from domain.vocabulary import Role
from registry import arrangements, shared_tables
from registry.aggregates import StatsQuery
from registry.arrangements import Arrangement
from registry.publication import Published

REASONS = {
    "not_in_force": "the arrangement is not in force today",
    "ended_early": "an admin ended the arrangement early: it no longer works",
    "format": "the arrangement does not allow this format",
    "dimension": "the arrangement does not allow these dimensions",
    "area_level": "the arrangement does not allow this area level",
    "purpose": "the arrangement does not accept this purpose",
    "other_arrangement": "the token is bound to another arrangement",
    "no_arrangement": "the token's arrangement no longer exists",
}


async def refuse(request: web.Request, arrangement_id: int | None, reason: str,
                 detail: dict[str, Any] | None = None) -> web.HTTPException:
    """Audit a partner's refused attempt and return the 403 to raise."""
    async with request.app[BEACON].db.write() as conn:
        await arrangements.audit_use(conn, request[CALLER].name, arrangement_id, reason,
                                     {"path": request.path, **(detail or {})})
    return api_error(403, "forbidden", REASONS[reason])


async def partner_arrangement(request: web.Request) -> Arrangement:
    """The arrangement of the calling partner; 403 (audited) when it is gone."""
    caller = request[CALLER]
    async with request.app[BEACON].db.read() as conn:
        found = None if caller.arrangement_id is None else await arrangements.find(conn, caller.arrangement_id)
    if found is None:
        raise await refuse(request, caller.arrangement_id, "no_arrangement")
    return found


async def admit(request: web.Request, query: StatsQuery, fmt: str) -> int:
    """The minimum cell for this fetch; for a partner, 403 (audited) when it is outside its arrangement."""
    service = request.app[BEACON].settings.min_cell
    if request[CALLER].role != Role.PARTNER:
        return service
    found = await partner_arrangement(request)
    reason = found.refusal(query, fmt, arrangements.today())
    if reason is not None:
        raise await refuse(request, found.id, reason, {"format": fmt, **query.describe()})
    return found.min_cell(service)


async def scheduled(request: web.Request, query: StatsQuery, min_cell: int) -> Published:
    """A partner's table: the one of its arrangement's current update period (QueryError if unanswerable)."""
    found = await partner_arrangement(request)
    beacon = request.app[BEACON]
    return await shared_tables.current(beacon.db, beacon.gazetteer, beacon.tables, found, query, min_cell,
                                       arrangements.now())


async def record_fetch(request: web.Request, detail: dict[str, Any]) -> bool:
    """Audit a partner's fetch with its arrangement id; False (nothing done) for other callers."""
    caller = request[CALLER]
    if caller.role != Role.PARTNER:
        return False
    async with request.app[BEACON].db.write() as conn:
        await arrangements.audit_use(conn, caller.name, caller.arrangement_id, None,
                                     {"path": request.path, **detail})
    return True
