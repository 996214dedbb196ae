"""Aggregates in the HXL/P-code form that IOM DTM and HDX use, at admin levels 1 and 2.

One row per area (and per value of any further dimension), the area named and coded at admin
level 1 and, for level 2, at level 2 under its level-1 parent; P-codes come from the gazetteer.
The first row names the columns, the second carries the HXL hashtags (hxlstandard.org), as HDX
expects. A suppressed count is an empty cell; the table comes from :func:`registry.publication.build`
like every other export, so suppression is the same.
"""

from __future__ import annotations

import csv
import io

from domain.areas import Gazetteer
from registry.exports import HXL
from registry.publication import Published

COUNT_TAG = "#affected+registered"
DATE_TAG = "#date+reported"


def _named(gazetteer: Gazetteer, area_id: str) -> tuple[str, str]:
    area = gazetteer.areas.get(area_id)
    if area is None:
        return ("Unknown", "")
    return (area.name("en"), area.pcode or "")


def _admin(gazetteer: Gazetteer, area_id: str, admin_level: int) -> list[str]:
    """The name and P-code columns of an area: level 1 alone, or its level-1 parent then itself for level 2.

    An area at the top of the gazetteer with nothing below it stays itself at level 2: its level-2 columns are empty.
    """
    if admin_level == 1:
        return list(_named(gazetteer, area_id))
    area = gazetteer.areas.get(area_id)
    if area is None or area.parent is None:
        return [*_named(gazetteer, area_id), "", ""]
    return [*_named(gazetteer, area.parent), *_named(gazetteer, area_id)]


def hxl_csv(published: Published, gazetteer: Gazetteer, admin_level: int) -> str:
    """The table as HXL-tagged CSV; the query's first dimension is the area, counted at ``admin_level - 1``."""
    table = published.table
    others = list(table.dims[1:])
    header = ["date", "adm1_name", "adm1_pcode"]
    tags = [DATE_TAG, "#adm1+name", "#adm1+code"]
    if admin_level == 2:
        header += ["adm2_name", "adm2_pcode"]
        tags += ["#adm2+name", "#adm2+code"]
    header += [*others, "registered"]
    tags += [*(HXL[name] for name in others), COUNT_TAG]
    day = published.data_as_of.date().isoformat() if published.data_as_of else ""
    rows: list[list[str]] = []
    for entry in table.cells:
        area_id, *values = entry.key
        rows.append([day, *_admin(gazetteer, str(area_id), admin_level), *map(str, values),
                     "" if entry.count is None else str(entry.count)])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerow(tags)
    rows.sort(key=lambda row: row[1:-1])
    writer.writerows(rows)
    return out.getvalue()
