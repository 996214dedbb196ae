"""The overview: registered people by area on a map, for those who send them the latest broadcasts, and for
admins the inbound messages set aside after failing too often."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from markupsafe import Markup

from beacon import api_stats
from beacon.console.web import FIELDWORK, SESSION, area_label, language_of, may_see, page, render, translate
from beacon.context import BEACON
from campaigns import queries
from domain.vocabulary import Role
from registry import aggregates, dead_letter, publication
from registry.aggregates import StatsQuery
from registry.disclosure import ALL, Entry, Table

LATEST = 5


async def root(request: web.Request) -> web.StreamResponse:
    """The console's front door (a fieldworker's is the registration page)."""
    raise web.HTTPSeeOther(FIELDWORK if request[SESSION].role == Role.FIELDWORKER else "/console/overview")


async def area_table(request: web.Request, exact: bool) -> Table:
    """Registered people by top-level area: exact for responders, suppressed for everyone else."""
    beacon = request.app[BEACON]
    query = StatsQuery(("area",), 0)
    if not exact:
        return (await publication.build(beacon.db, beacon.gazetteer, beacon.tables, query,
                                        beacon.settings.min_cell)).table
    counts = await aggregates.count(beacon.db, beacon.gazetteer, query)
    cells = tuple(Entry(key, value, False) for key, value in sorted(counts.cells.items(), key=lambda kv: -kv[1]))
    return Table(("area",), 1, cells, (), Entry((ALL,), sum(counts.cells.values()), False))


@page("overview")
async def overview(request: web.Request) -> web.StreamResponse:
    """Registered people by area on a map, the latest broadcasts with their tallies, and (admins) dead letters."""
    beacon = request.app[BEACON]
    exact = may_see(request[SESSION].role, "broadcasts")
    table = await area_table(request, exact)
    latest: list[dict[str, Any]] = []
    open_cases = broadcast_count = 0
    if exact:
        async with beacon.db.read() as conn:
            latest = await queries.latest_broadcasts(conn, LATEST)
            open_cases = await queries.open_case_total(conn)
            broadcast_count = await queries.broadcast_total(conn)
    dead_letters = None
    if request[SESSION].role == Role.ADMIN:
        async with beacon.db.read() as conn:
            dead_letters = await dead_letter.waiting(conn)
    rows = [(area_label(request, e.key[0]), e.count) for e in table.cells]
    return render(request, "overview.html", {
        "exact": exact, "rows": rows, "total": table.total.count, "min_cell": beacon.settings.min_cell,
        "map": Markup(api_stats.svg_map(  # noqa: S704 - built from escaped parts
            beacon.gazetteer, table, language=language_of(request), withheld=translate(request, "withheld"),
            caption=translate(request, "Registered people by area"),
            reference=[beacon.gazetteer.areas[a] for a in beacon.gazetteer.top_level])),
        "latest": latest, "open_cases": open_cases, "broadcasts": broadcast_count, "dead_letters": dead_letters,
    })


def add_routes(app: web.Application) -> None:
    """Mount the front door and the overview."""
    app.router.add_get("/console", root)
    app.router.add_get("/console/", root)
    app.router.add_get("/console/overview", overview)
