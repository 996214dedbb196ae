"""Aggregate statistics under /api/v1: the suppressed tables, their CSV and GeoJSON exports and the situation report.

Every number leaves through :func:`registry.publication.build` (and so :func:`registry.disclosure.protect`);
suppressed cells look the same whatever the reason they are hidden (below the threshold, or hidden to
protect one that is), since telling the two apart would give the threshold away as a bound. Every call
is audited with the caller's name and the query, never with a number about a person. The export
formats are :mod:`registry.exports`; the situation report is the template ``templates/situation.html``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from babel import Locale
from sqlalchemy import select

from beacon import sharing
from beacon.context import BEACON
from beacon.http import CALLER, api_error, requires
from bot.countries import country_name
from domain.areas import Gazetteer
from domain.vocabulary import Role
from registry import aggregates, audit, disclosure, exports, publication, schema
from registry.aggregates import UNKNOWN, QueryError, StatsQuery
from registry.disclosure import ALL, Table
from registry.publication import Published

READERS = (Role.ANALYST, Role.RESPONDER)  # admin always
SHARED = (*READERS, Role.PARTNER)  # a partner inside its arrangement (see beacon.sharing)
REPORT_DIMENSIONS = ("nationality", "gender", "age_band", "language")
ENGLISH = Locale.parse("en")


def _invalid(exc: QueryError) -> web.HTTPException:
    return api_error(422, "validation_error", f"invalid field(s): {exc.field}",
                     [{"field": exc.field, "message": exc.message}])


async def compute(request: web.Request, query: StatsQuery, min_cell: int | None = None) -> Published:
    """:func:`registry.publication.build` for a request (at ``min_cell``, else the service's); 422 naming the
    field for a query that cannot be answered."""
    beacon = request.app[BEACON]
    try:
        if request[CALLER].role == Role.PARTNER:  # the table of the arrangement's update period
            return await sharing.scheduled(request, query, min_cell or beacon.settings.min_cell)
        return await publication.build(beacon.db, beacon.gazetteer, beacon.tables, query,
                                       min_cell or beacon.settings.min_cell)
    except QueryError as exc:
        raise _invalid(exc) from None


def headers(published: Published) -> dict[str, str]:
    """Response headers saying how fresh a table is: ``Data-As-Of`` (when the registry last changed before it
    was counted) and, for a partner's table, ``Data-Updated`` and ``Data-Next-Update`` (its update period)."""
    found = {"Data-As-Of": exports.freshness(published.data_as_of) or "no data"}
    if published.updated_at is not None and published.next_update_at is not None:
        found["Data-Updated"] = exports.stamp(published.updated_at) or ""
        found["Data-Next-Update"] = exports.stamp(published.next_update_at) or ""
    return found


def parse(request: web.Request, default_by: Sequence[str] = ("area",)) -> StatsQuery:
    """The stats query of the request's ``by``, ``level`` and ``broadcast``; 422 naming the field."""
    try:
        return aggregates.parse_query(request.query.get("by"), request.query.get("level"),
                                      request.query.get("broadcast"), request.app[BEACON].gazetteer, default_by)
    except QueryError as exc:
        raise _invalid(exc) from None


async def record(request: web.Request, detail: dict[str, Any], published: Published | None = None) -> None:
    """The audit entry for a read: who, which endpoint, which query (a partner's, with its arrangement, and
    which update period's table it was given)."""
    if published is not None and published.updated_at is not None:
        detail = {**detail, "table_of": exports.stamp(published.updated_at)}
    if await sharing.record_fetch(request, detail):
        return
    async with request.app[BEACON].db.write() as conn:
        await audit.append(conn, request[CALLER].name, "stats.read", None, {"path": request.path, **detail})


@requires(*SHARED)
async def stats(request: web.Request) -> web.Response:
    """Aggregate counts by the dimensions in ``by``, suppressed for publication."""
    query = parse(request)
    min_cell = await sharing.admit(request, query, "json")
    published = await compute(request, query, min_cell)
    await record(request, query.describe(), published)
    return web.json_response(exports.as_json(published, min_cell), headers=headers(published))


@requires(*SHARED)
async def stats_csv(request: web.Request) -> web.Response:
    """The same table as CSV with HXL hashtags and P-codes."""
    query = parse(request)
    min_cell = await sharing.admit(request, query, "csv")
    published = await compute(request, query, min_cell)
    await record(request, query.describe(), published)
    beacon = request.app[BEACON]
    text = exports.csv_text(published, beacon.gazetteer, min_cell)
    name = "beacon-stats-" + "-".join(query.by) + ".csv"
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', **headers(published)})


@requires(*SHARED)
async def stats_geojson(request: web.Request) -> web.Response:
    """Areas as GeoJSON points with their suppressed counts."""
    query = parse(request)
    if "area" not in query.by:
        raise _invalid(QueryError("by", "a GeoJSON export needs area among the dimensions"))
    min_cell = await sharing.admit(request, query, "geojson")
    published = await compute(request, query, min_cell)
    await record(request, query.describe(), published)
    beacon = request.app[BEACON]
    return web.json_response(exports.geojson(published, beacon.gazetteer, min_cell),
                             content_type="application/geo+json", headers=headers(published))


# -- the map -----------------------------------------------------------------------------------------------

def _shown(count: int | None) -> str:
    return "withheld" if count is None else f"{count:,}"


TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)
TEMPLATES.filters["shown"] = _shown
TEMPLATES.filters["coordinate"] = lambda value: f"{value:.1f}"

# Map text, in viewBox units: on a phone the 640-unit map is about 360 px wide, so the text is drawn
# larger there (see the CSS); labels are placed for that larger size so they never overlap on any screen.
LABEL_SIZE, VALUE_SIZE = 22.0, 20.0
WIDTH, HEIGHT, PAD, LABEL_ROOM = 640, 420, 60.0, 130.0  # labels sit beside the circles
Box = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class Label:
    """Where an area's name and number go: their text-anchor, x and the baselines of the two lines."""

    anchor: str
    x: float
    name_y: float
    value_y: float


@dataclass(frozen=True)
class Mark:
    """One counted area on the map: a circle (``dot``, or ``withheld``) and its label."""

    name: str
    shown: str
    kind: str
    x: float
    y: float
    radius: float
    label: Label


@dataclass(frozen=True)
class Point:
    """A reference area: a small unlabelled point."""

    name: str
    x: float
    y: float


@dataclass(frozen=True)
class MapLayout:
    """What ``templates/map.html`` draws."""

    caption: str
    references: list[Point]
    marks: list[Mark]
    width: int = WIDTH
    height: int = HEIGHT


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_label(x: float, y: float, r: float, name: str, value: str, taken: list[Box],
                 circles: list[tuple[float, float, float]]) -> Label:
    """Where an area's two lines of text go: right of, left of, below or above its circle.

    The first place that stays inside the map and overlaps no label placed before nor another
    circle (else the least bad); its box is added to ``taken``.
    """
    text_w = max(len(name) * LABEL_SIZE * 0.62, len(value) * VALUE_SIZE * 0.58)
    text_h = LABEL_SIZE + VALUE_SIZE + 4
    options: list[tuple[str, float, float, float]] = [  # anchor, x, name baseline, left edge of the box
        ("start", x + r + 4, y - 2, x + r + 4),
        ("end", x - r - 4, y - 2, x - r - 4 - text_w),
        ("middle", x, y + r + LABEL_SIZE, x - text_w / 2),
        ("middle", x, y - r - VALUE_SIZE - 8, x - text_w / 2),
    ]
    best: tuple[float, Label, Box] | None = None
    for anchor, tx, baseline, left in options:
        top = baseline - LABEL_SIZE * 0.8
        box = (left, top, left + text_w, top + text_h)
        penalty = 100.0 if box[0] < 2 or box[1] < 2 or box[2] > WIDTH - 2 or box[3] > HEIGHT - 2 else 0.0
        penalty += 10 * sum(_overlap(box, other) for other in taken)
        penalty += sum(_overlap(box, (cx - cr, cy - cr, cx + cr, cy + cr)) for cx, cy, cr in circles
                       if (cx, cy) != (x, y))
        if best is None or penalty < best[0]:
            best = (penalty, Label(anchor, tx, baseline, baseline + VALUE_SIZE + 2), box)
        if penalty == 0:
            break
    assert best is not None
    taken.append(best[2])
    return best[1]


def map_layout(gazetteer: Gazetteer, area_table: Table, *, language: str = "en", withheld: str = "withheld",
               caption: str = "Map of registered people by area", reference: Sequence[Any] = ()) -> MapLayout | None:
    """Each area with coordinates as a circle whose area follows its count; None when no area has any.

    Names are in ``language``; ``withheld`` and ``caption`` are the words the reader's language uses.
    ``reference`` areas (with coordinates) are drawn as small unlabelled points and count in the
    bounds, so that a few counted areas still sit where they are in the country.

    A withheld area gets a small dashed circle of the same size whatever its count, and its label
    says "withheld": nothing drawn depends on a withheld number.
    """
    placed: list[tuple[Any, disclosure.Entry, float, float]] = []  # area, entry, lat, lon
    for entry in area_table.cells:
        area = gazetteer.areas.get(entry.key[0])
        if area is not None and area.lat is not None and area.lon is not None:
            placed.append((area, entry, area.lat, area.lon))
    counted = {p[0].id for p in placed}
    others = [a for a in reference if a.id not in counted and a.lat is not None and a.lon is not None]
    if not placed and not others:
        return None
    lats = [p[2] for p in placed] + [a.lat for a in others]
    lons = [p[3] for p in placed] + [a.lon for a in others]
    squeeze = math.cos(math.radians(sum(lats) / len(lats)))
    span_x = max((max(lons) - min(lons)) * squeeze, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((WIDTH - 2 * PAD - LABEL_ROOM) / span_x, (HEIGHT - 2 * PAD) / span_y)
    # Centre the points in the room they take (a single area, or a north-south spread, is not stuck left).
    offset_x = (WIDTH - LABEL_ROOM - 2 * PAD - span_x * scale) / 2
    offset_y = (HEIGHT - 2 * PAD - span_y * scale) / 2

    def position(lat: float, lon: float) -> tuple[float, float]:
        return (PAD + offset_x + (lon - min(lons)) * squeeze * scale,
                HEIGHT - PAD - offset_y - (lat - min(lats)) * scale)

    biggest = max((p[1].count or 0 for p in placed), default=0) or 1
    drawn: list[tuple[str, disclosure.Entry, float, float, float]] = []  # name, entry, x, y, radius
    for area, entry, lat, lon in sorted(placed, key=lambda p: -(p[1].count or 0)):
        radius = 7.0 if entry.count is None else 6 + 34 * math.sqrt(entry.count / biggest)
        drawn.append((area.name(language), entry, *position(lat, lon), radius))
    taken: list[Box] = []
    circles = [(x, y, radius) for _, _, x, y, radius in drawn]
    marks = []
    for name, entry, x, y, radius in drawn:
        shown = withheld if entry.count is None else _shown(entry.count)
        marks.append(Mark(name, shown, "withheld" if entry.count is None else "dot", x, y, radius,
                          _place_label(x, y, radius, name, shown, taken, circles)))
    return MapLayout(caption, [Point(a.name(language), *position(a.lat, a.lon)) for a in others], marks)


def svg_map(gazetteer: Gazetteer, area_table: Table, *, language: str = "en", withheld: str = "withheld",
            caption: str = "Map of registered people by area", reference: Sequence[Any] = ()) -> str:
    """The :func:`map_layout` as inline SVG (escaped by the template), or a note when no area has coordinates."""
    layout = map_layout(gazetteer, area_table, language=language, withheld=withheld, caption=caption,
                        reference=reference)
    return TEMPLATES.get_template("map.html").render(layout=layout)


# -- the situation report -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: its width in per cent of the biggest, None when withheld."""

    label: str
    count: int | None
    width: float | None


@dataclass(frozen=True)
class Chart:
    """A bar chart with its total row."""

    title: str
    bars: list[Bar]
    total: int | None


@dataclass(frozen=True)
class GridRow:
    """One area's check-in answers: its total and a count per answer (None when withheld)."""

    area: str
    total: int | None
    counts: list[int | None]


@dataclass(frozen=True)
class CheckIn:
    """The answers to the latest check-in broadcast, overall and by area."""

    broadcast: int
    answers: Chart
    columns: list[str]
    rows: list[GridRow]


def _chart(title: str, rows: list[tuple[str, int | None]], total: int | None) -> Chart:
    biggest = max((c or 0 for _, c in rows), default=0) or 1
    return Chart(title, [Bar(label, count, None if count is None else max(0.5, 100 * count / biggest))
                         for label, count in rows], total)


def _label(gazetteer: Gazetteer, name: str, value: str) -> str:
    if name == "area":
        area = gazetteer.areas.get(value)
        return area.name("en") if area else ("Unknown" if value == UNKNOWN else value)
    if value == UNKNOWN:
        return "Not given"
    if name == "nationality":
        return f"{country_name(value, 'en')} ({value})"
    if name == "language":
        return f"{ENGLISH.languages.get(value, value)} ({value})"
    if name == "gender":
        return value.capitalize()
    return {"need_help": "Needs help", "no_reply": "No reply", "safe": "Safe"}.get(value, value)


def _check_in(gazetteer: Gazetteer, broadcast: int, by_status: Table, by_area_status: Table) -> CheckIn:
    answers = _chart("Recipients by answer", [(_label(gazetteer, "status", s), next(
        (e.count for e in by_status.cells if e.key[0] == s), 0)) for s in aggregates.STATUSES],
        by_status.total.count)
    area_totals = {e.key[0]: e.count for e in by_area_status.totals if e.key[0] is not ALL}
    cells = {e.key: e.count for e in by_area_status.cells}
    rows = [GridRow(_label(gazetteer, "area", area_id), area_totals.get(area_id),
                    [cells.get((area_id, s), 0) for s in aggregates.STATUSES])
            for area_id in sorted({e.key[0] for e in by_area_status.cells})]
    return CheckIn(broadcast, answers, [_label(gazetteer, "status", s) for s in aggregates.STATUSES], rows)


def report_html(*, gazetteer: Gazetteer, min_cell: int, level: int, areas: Published, dims: dict[str, Table],
                check_in: CheckIn | None) -> str:
    """The printable, self-contained situation report (no script, no outside resource)."""
    # The grand total is the same number in every table: shown only if no table withholds it.
    grand = None if any(t.total.suppressed for t in (areas.table, *dims.values())) else areas.table.total.count
    return TEMPLATES.get_template("situation.html").render(
        produced_at=exports.stamp(areas.generated_at), data_as_of=exports.freshness(areas.data_as_of),
        suppression=exports.suppression_rule(min_cell), min_cell=min_cell, level=level, total=grand,
        layout=map_layout(gazetteer, areas.table),
        by_area=_chart("Registered people by area",
                       [(_label(gazetteer, "area", e.key[0]), e.count) for e in areas.table.cells], grand),
        check_in=check_in,
        charts=[_chart(exports.TITLES[name], [(_label(gazetteer, name, e.key[0]), e.count) for e in table.cells],
                       grand) for name, table in dims.items()])


async def _latest_check_in(request: web.Request) -> int | None:
    b = schema.broadcasts.c
    async with request.app[BEACON].db.read() as conn:
        return (await conn.execute(select(b.id).where(b.check_in.is_(True), b.status.in_(("sending", "sent")))
                                   .order_by(b.id.desc()).limit(1))).scalar()


@requires(*READERS)
async def situation_report(request: web.Request) -> web.Response:
    """A printable HTML page: a map of areas and bar charts, suppressed like the tables."""
    beacon = request.app[BEACON]
    area_query = parse(request, ("area",))
    level = area_query.level
    broadcast = area_query.broadcast
    if broadcast is None and not request.query.get("broadcast"):
        broadcast = await _latest_check_in(request)
    areas = await compute(request, StatsQuery(("area",), level))
    dims = {name: (await compute(request, StatsQuery((name,), level))).table for name in REPORT_DIMENSIONS}
    check_in = None
    if broadcast is not None:
        by_status = await compute(request, StatsQuery(("status",), level, broadcast))
        by_area_status = await compute(request, StatsQuery(("area", "status"), level, broadcast))
        check_in = _check_in(beacon.gazetteer, broadcast, by_status.table, by_area_status.table)
    await record(request, {"level": level, "broadcast": broadcast})
    page = report_html(gazetteer=beacon.gazetteer, min_cell=beacon.settings.min_cell, level=level, areas=areas,
                       dims=dims, check_in=check_in)
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def openapi_paths() -> dict[str, Any]:
    """These endpoints for the OpenAPI document (merge into its "paths")."""
    params = [
        {"name": "by", "in": "query", "schema": {"type": "string", "default": "area"},
         "description": "comma-separated dimensions: " + ", ".join(aggregates.DIMENSIONS)},
        {"name": "level", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0},
         "description": "gazetteer depth the areas are counted at (0: top level)"},
        {"name": "broadcast", "in": "query", "schema": {"type": "integer"},
         "description": "count that broadcast's recipients; needed for the status dimension"},
    ]
    cell = {"type": "object", "required": ["count", "suppressed"], "additionalProperties": {"type": "string"},
            "properties": {"count": {"type": ["integer", "null"]}, "suppressed": {"type": "boolean"}}}
    errors = {str(code): {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((401, "no valid token"), (403, "role may not"), (422, "invalid query parameter"))}
    table = {"type": "object", "required": ["by", "min_cell", "cells", "total"], "properties": {
        "by": {"type": "array", "items": {"enum": list(aggregates.DIMENSIONS)}}, "min_cell": {"type": "integer"},
        "cells": {"type": "array", "items": cell}, "totals": {"type": "array", "items": cell}, "total": cell,
        "generated_at": {"type": "string", "format": "date-time"},
        "data_as_of": {"type": ["string", "null"], "format": "date-time"}, "suppression": {"type": "string"},
        "update_frequency": {"type": "string", "description": "a partner's table: how often it is updated"},
        "updated_at": {"type": "string", "format": "date-time",
                       "description": "a partner's table: the latest scheduled update (this period's start)"},
        "next_update_at": {"type": "string", "format": "date-time",
                           "description": "a partner's table: when it is next updated"},
        "level": {"type": "integer"}, "broadcast": {"type": "integer"}}}

    def read(summary: str, media: str, schema: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": parameters, "responses": {
            "200": {"description": summary, "content": {media: {"schema": schema}}}, **errors}}}

    return {
        "/api/v1/stats": read("Aggregate counts, small ones suppressed", "application/json", table, params),
        "/api/v1/stats.csv": read("The same table as CSV with metadata lines, HXL hashtags and P-codes",
                                  "text/csv", {"type": "string"}, params),
        "/api/v1/stats.geojson": read("Areas as GeoJSON points with their suppressed counts",
                                      "application/geo+json", {"type": "object"}, params),
        "/api/v1/reports/situation": read("Printable situation report (self-contained HTML)", "text/html",
                                          {"type": "string"}, params[1:]),
    }


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/stats.csv", stats_csv)
    app.router.add_get("/api/v1/stats.geojson", stats_geojson)
    app.router.add_get("/api/v1/reports/situation", situation_report)
