"""Aggregate statistics: the suppressed tables, their CSV and GeoJSON exports and the situation report.

Every number leaves through :func:`registry.disclosure.protect`; suppressed cells look the same
whatever the reason they are hidden (below the threshold, or hidden to protect one that is),
since telling the two apart would give the threshold away as a bound. Every call is audited with
the caller's name and the query, never with a number about a person.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from babel import Locale
from sqlalchemy import select

from beacon.context import BEACON
from beacon.http import CALLER, api_error, requires
from bot.countries import country_name
from domain.areas import Gazetteer
from domain.vocabulary import Role
from registry import aggregates, audit, disclosure, schema
from registry.aggregates import UNKNOWN, QueryError, StatsQuery
from registry.db import Database
from registry.disclosure import ALL, Table
from registry.times import aware

READERS = (Role.ANALYST, Role.RESPONDER)  # admin always
HXL = {
    "nationality": "#group+nationality",
    "gender": "#group+gender",
    "age_band": "#group+age",
    "language": "#language",
    "channel": "#meta+channel",
}
HXL_TOTAL = "#population+migrants+total"
HXL_STATUS = {"safe": "#affected+safe", "need_help": "#affected+need_help", "no_reply": "#affected+no_reply"}
REPORT_DIMENSIONS = ("nationality", "gender", "age_band", "language")
ENGLISH = Locale.parse("en")
TITLES = {"area": "Area", "nationality": "Nationality", "gender": "Gender", "age_band": "Age band",
          "language": "Language", "channel": "Channel", "status": "Check-in"}


@dataclass(frozen=True)
class Published:
    """One protected table and what it was made from."""

    query: StatsQuery
    table: Table
    generated_at: datetime
    data_as_of: datetime | None


def suppression_rule(min_cell: int) -> str:
    return (f"Counts below {min_cell} are withheld, and so are further counts and totals where needed so that "
            f"no withheld count can be worked out from the published ones (a withheld count is empty or null; "
            f"it may be fewer than {min_cell} or hidden to protect one that is).")


def _invalid(exc: QueryError) -> web.HTTPException:
    return api_error(422, "validation_error", f"invalid field(s): {exc.field}",
                     [{"field": exc.field, "message": exc.message}])


class ProtectedTables:
    """The last protected tables by their exact counts.

    Protection is a pure function of the counts, the dimensions and the threshold, and counts
    change far less often than the overview, the Aggregates page and report schedules ask for them:
    the same counts are protected once. A table with any count changed is a new key.
    """

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._tables: OrderedDict[tuple[Any, ...], Table] = OrderedDict()

    async def protect(self, counts: dict[tuple[str, ...], int], dims: Sequence[str], min_cell: int) -> Table:
        key = (tuple(dims), min_cell, frozenset(counts.items()))
        found = self._tables.get(key)
        if found is not None:
            self._tables.move_to_end(key)
            return found
        if len(counts) > 200:  # a big table takes a while: let the other requests through meanwhile
            table = await asyncio.to_thread(disclosure.protect, counts, dims, min_cell)
        else:
            table = disclosure.protect(counts, dims, min_cell)
        self._tables[key] = table
        while len(self._tables) > self._size:
            self._tables.popitem(last=False)
        return table


PROTECTED = ProtectedTables()


async def build(db: Database, gazetteer: Gazetteer, query: StatsQuery, min_cell: int) -> Published:
    """Count and protect one table (what every endpoint here publishes from)."""
    counts = await aggregates.count(db, gazetteer, query)
    table = await PROTECTED.protect(counts.cells, query.by, min_cell)
    return Published(query, table, datetime.now(UTC), counts.data_as_of)


async def compute(request: web.Request, query: StatsQuery) -> Published:
    """:func:`build` for a request; 422 naming the field for a query that cannot be answered."""
    beacon = request.app[BEACON]
    try:
        return await build(beacon.db, beacon.gazetteer, query, beacon.settings.min_cell)
    except QueryError as exc:
        raise _invalid(exc) from None


def parse(request: web.Request, default_by: Sequence[str] = ("area",)) -> StatsQuery:
    try:
        return aggregates.parse_query(request.query.get("by"), request.query.get("level"),
                                      request.query.get("broadcast"), request.app[BEACON].gazetteer, default_by)
    except QueryError as exc:
        raise _invalid(exc) from None


async def record(request: web.Request, detail: dict[str, Any]) -> None:
    """The audit entry for a read: who, which endpoint, which query."""
    async with request.app[BEACON].db.write() as conn:
        await audit.append(conn, request[CALLER].name, "stats.read", None, {"path": request.path, **detail})


def _iso(moment: datetime | None) -> str | None:
    return aware(moment).isoformat(timespec="seconds") if moment is not None else None


def _freshness(moment: datetime | None) -> str | None:
    """When the counted data last changed, to the minute (no finer: it is someone's last message)."""
    return _iso(aware(moment).replace(second=0, microsecond=0)) if moment is not None else None


def _entry(dims: Sequence[str], entry: disclosure.Entry) -> dict[str, Any]:
    found: dict[str, Any] = {name: value for name, value in zip(dims, entry.key, strict=True) if value is not ALL}
    found["count"] = entry.count
    found["suppressed"] = entry.suppressed
    return found


def as_json(published: Published, min_cell: int) -> dict[str, Any]:
    table, query = published.table, published.query
    body: dict[str, Any] = {
        "by": list(table.dims),
        "min_cell": min_cell,
        "cells": [_entry(table.dims, e) for e in table.cells],
        "totals": [_entry(table.dims, e) for e in table.totals],
        "total": {"count": table.total.count, "suppressed": table.total.suppressed},
        "generated_at": _iso(published.generated_at),
        "data_as_of": _freshness(published.data_as_of),
        "suppression": suppression_rule(min_cell),
    }
    if "area" in query.by:
        body["level"] = query.level
    if query.broadcast is not None:
        body["broadcast"] = query.broadcast
    return body


@requires(*READERS)
async def stats(request: web.Request) -> web.Response:
    """Aggregate counts by the dimensions in ``by``, suppressed for publication."""
    query = parse(request)
    published = await compute(request, query)
    await record(request, query.describe())
    return web.json_response(as_json(published, request.app[BEACON].settings.min_cell))


# -- CSV ----------------------------------------------------------------------------------------------

def _area_columns(level: int) -> list[tuple[str, str]]:
    tag = f"#adm{level + 1}"
    return [("area", f"{tag}+id"), ("area_name", f"{tag}+name"), ("area_pcode", f"{tag}+code")]


def _area_values(gazetteer: Gazetteer, area_id: str) -> list[str]:
    area = gazetteer.areas.get(area_id)
    if area is None:
        return [area_id, "Unknown" if area_id == UNKNOWN else area_id, ""]
    return [area.id, area.name("en"), area.pcode or ""]


def _number(count: int | None) -> str:
    return "" if count is None else str(count)


def csv_text(published: Published, gazetteer: Gazetteer, min_cell: int) -> str:
    """The table as CSV: "# key: value" metadata lines, the header row, the HXL hashtag row, the rows."""
    table, query = published.table, published.query
    dims = list(table.dims)
    out = io.StringIO()
    total = "withheld" if table.total.suppressed else str(table.total.count)
    for key, value in (
        ("title", "Registered people by " + ", ".join(TITLES[d].lower() for d in dims)),
        ("source", "Beacon registry: aggregated counts only, never a row about a person"),
        ("produced_at", _iso(published.generated_at)),
        ("data_as_of", _freshness(published.data_as_of) or "no data"),
        ("suppression", suppression_rule(min_cell)),
        ("min_cell", str(min_cell)),
        ("query", "; ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                            for k, v in query.describe().items() if v is not None)),
        ("total", total),
    ):
        out.write(f"# {key}: {value}\n")
    writer = csv.writer(out, lineterminator="\n")
    keys = [d for d in dims if d != "status"]
    header: list[str] = []
    tags: list[str] = []
    for name in keys:
        if name == "area":
            for column, tag in _area_columns(query.level):
                header.append(column)
                tags.append(tag)
        else:
            header.append(name)
            tags.append(HXL[name])

    def row_start(key: dict[str, str]) -> list[str]:
        values: list[str] = []
        for name in keys:
            values += _area_values(gazetteer, key[name]) if name == "area" else [key[name]]
        return values

    if "status" not in dims:
        writer.writerow([*header, "count"])
        writer.writerow([*tags, HXL_TOTAL])
        for entry in table.cells:
            writer.writerow([*row_start(dict(zip(dims, entry.key, strict=True))), _number(entry.count)])
        return out.getvalue()
    # With check-in status: one row per combination of the other dimensions, one column per answer.
    writer.writerow([*header, "total", *aggregates.STATUSES])
    writer.writerow([*tags, HXL_TOTAL, *(HXL_STATUS[s] for s in aggregates.STATUSES)])
    position = dims.index("status")
    rows: dict[tuple[str, ...], dict[str, disclosure.Entry]] = {}
    for entry in table.cells:
        rest = entry.key[:position] + entry.key[position + 1:]
        rows.setdefault(rest, {})[entry.key[position]] = entry
    row_totals = {e.key[:position] + e.key[position + 1:]: e for e in (*table.totals, table.total)
                  if e.key[position] is ALL and all(v is not ALL for i, v in enumerate(e.key) if i != position)}
    for rest in sorted(rows, key=lambda k: [str(v) for v in k]):
        by_status = rows[rest]
        total_entry = row_totals.get(rest)
        values = [_number(total_entry.count) if total_entry else ""]
        for status in aggregates.STATUSES:
            found = by_status.get(status)
            values.append("0" if found is None else _number(found.count))
        writer.writerow([*row_start(dict(zip(keys, rest, strict=True))), *values])
    return out.getvalue()


@requires(*READERS)
async def stats_csv(request: web.Request) -> web.Response:
    """The same table as CSV with HXL hashtags and P-codes."""
    query = parse(request)
    published = await compute(request, query)
    await record(request, query.describe())
    beacon = request.app[BEACON]
    text = csv_text(published, beacon.gazetteer, beacon.settings.min_cell)
    name = "beacon-stats-" + "-".join(query.by) + ".csv"
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- GeoJSON ----------------------------------------------------------------------------------------------

def geojson(published: Published, gazetteer: Gazetteer, min_cell: int) -> dict[str, Any]:
    """Areas with coordinates as Point features; the count is the area's (suppressed) total."""
    table, query = published.table, published.query
    dims = list(table.dims)
    position = dims.index("area")
    one_way = len(dims) == 1
    if one_way:
        area_totals = {e.key[0]: e for e in table.cells}
    else:  # the one-way totals by area
        area_totals = {e.key[position]: e for e in table.totals if e.key[position] is not ALL
                       and all(v is ALL for i, v in enumerate(e.key) if i != position)}
    breakdown: dict[str, list[dict[str, Any]]] = {}
    if not one_way:
        for entry in table.cells:
            breakdown.setdefault(entry.key[position], []).append(_entry(dims, entry))
    features = []
    elsewhere = []
    for area_id, entry in sorted(area_totals.items()):
        area = gazetteer.areas.get(area_id)
        properties: dict[str, Any] = {
            "area": area_id, "name": area.name("en") if area else area_id,
            "names": dict(area.names) if area else {}, "pcode": area.pcode if area else None,
            "count": entry.count, "suppressed": entry.suppressed,
        }
        if not one_way:
            properties["cells"] = breakdown.get(area_id, [])
        if area is None or area.lat is None or area.lon is None:
            elsewhere.append(properties)
            continue
        features.append({"type": "Feature", "id": area_id,
                         "geometry": {"type": "Point", "coordinates": [area.lon, area.lat]},
                         "properties": properties})
    return {
        "type": "FeatureCollection",
        "metadata": {
            "title": "Registered people by area",
            "produced_at": _iso(published.generated_at),
            "data_as_of": _freshness(published.data_as_of),
            "suppression": suppression_rule(min_cell),
            "min_cell": min_cell,
            "query": query.describe(),
            "total": {"count": table.total.count, "suppressed": table.total.suppressed},
            "without_coordinates": elsewhere,
        },
        "features": features,
    }


@requires(*READERS)
async def stats_geojson(request: web.Request) -> web.Response:
    """Areas as GeoJSON points with their suppressed counts."""
    query = parse(request)
    if "area" not in query.by:
        raise _invalid(QueryError("by", "a GeoJSON export needs area among the dimensions"))
    published = await compute(request, query)
    await record(request, query.describe())
    beacon = request.app[BEACON]
    return web.json_response(geojson(published, beacon.gazetteer, beacon.settings.min_cell),
                             content_type="application/geo+json")


# -- the situation report -------------------------------------------------------------------------------

def _shown(count: int | None) -> str:
    return "withheld" if count is None else f"{count:,}"


# Map text, in viewBox units: on a phone the 640-unit map is about 360 px wide, so the text is drawn
# larger there (see CSS); labels are placed for that larger size so they never overlap on any screen.
LABEL_SIZE, VALUE_SIZE = 22.0, 20.0
Box = tuple[float, float, float, float]  # left, top, right, bottom


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_label(x: float, y: float, r: float, name: str, value: str, width: float, height: float,
                 taken: list[Box], circles: list[tuple[float, float, float]]) -> tuple[str, float, float, float]:
    """Where an area's two lines of text go: right of, left of, below or above its circle.

    Returns (text-anchor, x, baseline of the name, baseline of the value) for the first place that
    stays inside the map and overlaps no label placed before nor another circle (else the least bad).
    """
    text_w = max(len(name) * LABEL_SIZE * 0.62, len(value) * VALUE_SIZE * 0.58)
    text_h = LABEL_SIZE + VALUE_SIZE + 4
    options: list[tuple[str, float, float, float]] = [  # anchor, x, name baseline, left edge of the box
        ("start", x + r + 4, y - 2, x + r + 4),
        ("end", x - r - 4, y - 2, x - r - 4 - text_w),
        ("middle", x, y + r + LABEL_SIZE, x - text_w / 2),
        ("middle", x, y - r - VALUE_SIZE - 8, x - text_w / 2),
    ]
    best: tuple[float, tuple[str, float, float, float], Box] | None = None
    for anchor, tx, baseline, left in options:
        top = baseline - LABEL_SIZE * 0.8
        box = (left, top, left + text_w, top + text_h)
        penalty = 100.0 if box[0] < 2 or box[1] < 2 or box[2] > width - 2 or box[3] > height - 2 else 0.0
        penalty += 10 * sum(_overlap(box, other) for other in taken)
        penalty += sum(_overlap(box, (cx - cr, cy - cr, cx + cr, cy + cr)) for cx, cy, cr in circles
                       if (cx, cy) != (x, y))
        if best is None or penalty < best[0]:
            best = (penalty, (anchor, tx, baseline, baseline + VALUE_SIZE + 2), box)
        if penalty == 0:
            break
    assert best is not None
    taken.append(best[2])
    return best[1]


def svg_map(gazetteer: Gazetteer, area_table: Table, *, language: str = "en", withheld: str = "withheld",
            caption: str = "Map of registered people by area", reference: Sequence[Any] = ()) -> str:
    """An inline SVG map: each area with coordinates as a circle whose area follows its count.

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
        return '<p class="note">No area in this table has coordinates in the gazetteer.</p>'
    lats = [p[2] for p in placed] + [a.lat for a in others]
    lons = [p[3] for p in placed] + [a.lon for a in others]
    squeeze = math.cos(math.radians(sum(lats) / len(lats)))
    width, height, pad, label_room = 640.0, 420.0, 60.0, 130.0  # labels sit beside the circles
    span_x = max((max(lons) - min(lons)) * squeeze, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((width - 2 * pad - label_room) / span_x, (height - 2 * pad) / span_y)
    # Centre the points in the room they take (a single area, or a north-south spread, is not stuck left).
    offset_x = (width - label_room - 2 * pad - span_x * scale) / 2
    offset_y = (height - 2 * pad - span_y * scale) / 2
    biggest = max((p[1].count or 0 for p in placed), default=0) or 1
    drawn: list[tuple[str, disclosure.Entry, float, float, float]] = []  # name, entry, x, y, radius
    for area, entry, lat, lon in sorted(placed, key=lambda p: -(p[1].count or 0)):
        x = pad + offset_x + (lon - min(lons)) * squeeze * scale
        y = height - pad - offset_y - (lat - min(lats)) * scale
        radius = 7.0 if entry.count is None else 6 + 34 * math.sqrt(entry.count / biggest)
        drawn.append((area.name(language), entry, x, y, radius))
    parts = [f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'aria-label="{html.escape(caption)}">',
             f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" class="sea"/>']
    for area in others:
        x = pad + offset_x + (area.lon - min(lons)) * squeeze * scale
        y = height - pad - offset_y - (area.lat - min(lats)) * scale
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="ref"><title>{html.escape(area.name(language))}'
                     f'</title></circle>')
    for name, entry, x, y, radius in drawn:  # biggest first, so the small ones stay visible on top
        shown = withheld if entry.count is None else _shown(entry.count)
        title = html.escape(f"{name}: {shown}")
        kind = "withheld" if entry.count is None else "dot"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" class="{kind}"><title>{title}</title>'
                     f'</circle>')
    taken: list[tuple[float, float, float, float]] = []
    circles = [(x, y, radius) for _, _, x, y, radius in drawn]
    for name, entry, x, y, radius in drawn:
        shown = withheld if entry.count is None else _shown(entry.count)
        anchor, tx, label_y, value_y = _place_label(x, y, radius, name, shown, width, height, taken, circles)
        parts.append(f'<text x="{tx:.1f}" y="{label_y:.1f}" text-anchor="{anchor}" class="label">'
                     f'{html.escape(name)}</text><text x="{tx:.1f}" y="{value_y:.1f}" text-anchor="{anchor}" '
                     f'class="value">{html.escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bars(title: str, rows: list[tuple[str, int | None]], total: disclosure.Entry | None = None) -> str:
    biggest = max((c or 0 for _, c in rows), default=0) or 1
    lines = [f"<section class=\"chart\"><h3>{html.escape(title)}</h3><table class=\"bars\">"]
    for label, count in rows:
        if count is None:
            bar = '<span class="bar withheld"></span>'
        else:
            bar = f'<span class="bar" style="width:{max(0.5, 100 * count / biggest):.1f}%"></span>'
        lines.append(f"<tr><th>{html.escape(label)}</th><td class=\"track\">{bar}</td>"
                     f"<td class=\"num\">{_shown(count)}</td></tr>")
    if total is not None:
        lines.append(f"<tr class=\"sum\"><th>Total</th><td></td><td class=\"num\">{_shown(total.count)}</td></tr>")
    lines.append("</table></section>")
    return "".join(lines)


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


async def _latest_check_in(request: web.Request) -> int | None:
    b = schema.broadcasts.c
    async with request.app[BEACON].db.read() as conn:
        return (await conn.execute(select(b.id).where(b.check_in.is_(True), b.status.in_(("sending", "sent")))
                                   .order_by(b.id.desc()).limit(1))).scalar()


CSS = """
*,*::before,*::after{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #1b1b1b;margin-top:2rem}
h3{font-size:1rem;margin:.5rem 0}.meta{color:#444;font-size:.85rem}.meta dt{font-weight:600;float:left;width:10rem}
.meta dd{margin:0 0 .2rem 10rem}.headline{font-size:2.2rem;font-weight:700}
.map{display:block;width:100%;height:auto;border:1px solid #999;background:#eef3f7}.sea{fill:#eef3f7}
.dot{fill:#c0392b;fill-opacity:.55;stroke:#7b241c}.withheld{fill:none;stroke:#555;stroke-dasharray:3 2}
.label,.value{paint-order:stroke;stroke:#eef3f7;stroke-width:4px;stroke-linejoin:round}
.label{font-size:13px;font-weight:600}.value{font-size:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr));gap:1rem 2.5rem}
table.bars{width:100%;border-collapse:collapse}table.bars th{text-align:left;font-weight:400;padding:2px 6px 2px 0;
width:38%}table.bars td.num{width:1%;white-space:nowrap;padding-left:.6rem;text-align:right;
font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.9rem;background:#2e6da4;vertical-align:middle;-webkit-print-color-adjust:exact;
print-color-adjust:exact}.bar.withheld{width:100%;background:repeating-linear-gradient(45deg,#ddd 0 4px,#fff 4px 8px);
border:1px dashed #888}tr.sum th,tr.sum td{border-top:1px solid #999;font-weight:600}
table.grid{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
table.grid th,table.grid td{border:1px solid #bbb;padding:3px 6px}
table.grid td{text-align:right}.note{font-size:.85rem;color:#444}
@media (max-width:40rem){body{margin:1rem auto}.meta dt{float:none;width:auto}.meta dd{margin:0 0 .4rem 0}
.label{font-size:22px}.value{font-size:20px}table.grid{font-size:.85rem}table.grid th,table.grid td{padding:3px 4px}}
@media print{body{margin:0;max-width:none;padding:0;font-size:10pt}h2{break-after:avoid}
.chart,.map,table{break-inside:avoid}}
@page{size:A4;margin:14mm}
"""


def report_html(*, gazetteer: Gazetteer, min_cell: int, level: int, generated_at: datetime,
                data_as_of: datetime | None, areas: Table, dims: dict[str, Table],
                status: tuple[int, Table, Table] | None) -> str:
    """The printable, self-contained situation report (no script, no outside resource)."""
    # The grand total is the same number in every table: shown only if no table withholds it.
    all_tables = [areas, *dims.values()]
    grand = areas.total if not any(t.total.suppressed for t in all_tables) else disclosure.Entry(
        areas.total.key, None, True)
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           "<title>Situation report — Beacon</title>", f"<style>{CSS}</style></head><body>",
           "<header><h1>Situation report</h1>",
           "<p class=\"note\">Registered people (consented, with an area), aggregated. No row about any "
           "person is shown.</p><dl class=\"meta\">",
           f"<dt>Produced at</dt><dd>{html.escape(_iso(generated_at) or '')}</dd>",
           f"<dt>Data as of</dt><dd>{html.escape(_freshness(data_as_of) or 'no data yet')}</dd>",
           f"<dt>Suppression</dt><dd>{html.escape(suppression_rule(min_cell))}</dd>",
           f"<dt>Withheld</dt><dd>shown as “withheld”: fewer than {min_cell} people, or hidden so that a "
           f"smaller number cannot be worked out from the totals.</dd>",
           f"<dt>Area level</dt><dd>{level}</dd></dl></header>",
           f"<section><h2>Registered people</h2><p class=\"headline\" id=\"total\">{_shown(grand.count)}</p>"
           "</section>",
           "<section><h2>By area</h2>", svg_map(gazetteer, areas),
           _bars("Registered people by area",
                 [(_label(gazetteer, "area", e.key[0]), e.count) for e in areas.cells], grand),
           "</section>"]
    if status is not None:
        broadcast_id, by_status, by_area_status = status
        out.append(f"<section><h2>Check-in answers to broadcast {broadcast_id}</h2>")
        out.append(_bars("Recipients by answer", [(_label(gazetteer, "status", s), next(
            (e.count for e in by_status.cells if e.key[0] == s), 0)) for s in aggregates.STATUSES],
            by_status.total))
        out.append("<table class=\"grid\"><tr><th>Area</th><th>Total</th>"
                   + "".join(f"<th>{_label(gazetteer, 'status', s)}</th>" for s in aggregates.STATUSES) + "</tr>")
        area_totals = {e.key[0]: e for e in by_area_status.totals if e.key[0] is not ALL}
        cells = {e.key: e for e in by_area_status.cells}
        for area_id in sorted({e.key[0] for e in by_area_status.cells}):
            total = area_totals.get(area_id)
            row = [f"<td>{_shown(total.count) if total else 'withheld'}</td>"]
            for s in aggregates.STATUSES:
                found = cells.get((area_id, s))
                row.append(f"<td>{'0' if found is None else _shown(found.count)}</td>")
            out.append(f"<tr><th>{html.escape(_label(gazetteer, 'area', area_id))}</th>{''.join(row)}</tr>")
        out.append("</table></section>")
    out.append("<section><h2>Who is registered</h2><div class=\"charts\">")
    for name, table in dims.items():
        out.append(_bars(TITLES[name], [(_label(gazetteer, name, e.key[0]), e.count) for e in table.cells], grand))
    out.append("</div></section>")
    out.append("<footer><p class=\"note\">Produced by Beacon from aggregated counts; every number below "
               f"{min_cell} is withheld and further numbers are withheld so none can be worked out.</p>"
               "</footer></body></html>")
    return "".join(out)


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
    status = None
    if broadcast is not None:
        by_status = await compute(request, StatsQuery(("status",), level, broadcast))
        by_area_status = await compute(request, StatsQuery(("area", "status"), level, broadcast))
        status = (broadcast, by_status.table, by_area_status.table)
    await record(request, {"level": level, "broadcast": broadcast})
    page = report_html(gazetteer=beacon.gazetteer, min_cell=beacon.settings.min_cell, level=level,
                       generated_at=areas.generated_at, data_as_of=areas.data_as_of, areas=areas.table,
                       dims=dims, status=status)
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
