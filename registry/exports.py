"""The export formats of a published table: JSON, CSV with HXL hashtags and P-codes, GeoJSON.

Pure functions of a :class:`~registry.publication.Published` table and the gazetteer (no I/O), so
the live API and the scheduled reports write exactly the same files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.areas import Gazetteer
from registry import aggregates, disclosure
from registry.aggregates import UNKNOWN
from registry.disclosure import ALL
from registry.publication import Published
from registry.times import aware

HXL = {
    "nationality": "#group+nationality",
    "gender": "#group+gender",
    "age_band": "#group+age",
    "language": "#language",
    "channel": "#meta+channel",
    "source": "#meta+source",
}
HXL_TOTAL = "#population+migrants+total"
HXL_STATUS = {"safe": "#affected+safe", "need_help": "#affected+need_help", "no_reply": "#affected+no_reply"}
TITLES = {"area": "Area", "nationality": "Nationality", "gender": "Gender", "age_band": "Age band",
          "language": "Language", "channel": "Channel", "status": "Check-in",
          "source": "Outreach source"}


def suppression_rule(min_cell: int) -> str:
    """The suppression rule in words, as every export states it."""
    return (f"Counts below {min_cell} are withheld, and so are further counts and totals where needed so that "
            f"no withheld count can be worked out from the published ones (a withheld count is empty or null; "
            f"it may be fewer than {min_cell} or hidden to protect one that is).")


def stamp(moment: datetime | None) -> str | None:
    """A moment in ISO 8601 to the second, or None."""
    return aware(moment).isoformat(timespec="seconds") if moment is not None else None


def freshness(moment: datetime | None) -> str | None:
    """When the counted data last changed, to the minute (no finer: it is someone's last message)."""
    return stamp(aware(moment).replace(second=0, microsecond=0)) if moment is not None else None


def entry_json(dims: Sequence[str], entry: disclosure.Entry) -> dict[str, Any]:
    """One cell or total: its dimension values (none for those summed over), count and whether withheld."""
    found: dict[str, Any] = {name: value for name, value in zip(dims, entry.key, strict=True) if value is not ALL}
    found["count"] = entry.count
    found["suppressed"] = entry.suppressed
    return found


def as_json(published: Published, min_cell: int) -> dict[str, Any]:
    """The table as ``GET /api/v1/stats`` answers it."""
    table, query = published.table, published.query
    body: dict[str, Any] = {
        "by": list(table.dims),
        "min_cell": min_cell,
        "cells": [entry_json(table.dims, e) for e in table.cells],
        "totals": [entry_json(table.dims, e) for e in table.totals],
        "total": {"count": table.total.count, "suppressed": table.total.suppressed},
        "generated_at": stamp(published.generated_at),
        "data_as_of": freshness(published.data_as_of),
        **published.schedule(),
        "suppression": suppression_rule(min_cell),
    }
    if "area" in query.by:
        body["level"] = query.level
    if query.broadcast is not None:
        body["broadcast"] = query.broadcast
    return body


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
        ("produced_at", stamp(published.generated_at)),
        ("data_as_of", freshness(published.data_as_of) or "no data"),
        *((key, value or "") for key, value in published.schedule().items()),
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


# -- GeoJSON ----------------------------------------------------------------------------------------------

def geojson(published: Published, gazetteer: Gazetteer, min_cell: int) -> dict[str, Any]:
    """Areas with coordinates as Point features; the count is the area's (suppressed) total.

    The table must have area among its dimensions.
    """
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
            breakdown.setdefault(entry.key[position], []).append(entry_json(dims, entry))
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
            "produced_at": stamp(published.generated_at),
            "data_as_of": freshness(published.data_as_of),
            **published.schedule(),
            "suppression": suppression_rule(min_cell),
            "min_cell": min_cell,
            "query": query.describe(),
            "total": {"count": table.total.count, "suppressed": table.total.suppressed},
            "without_coordinates": elsewhere,
        },
        "features": features,
    }
