"""CAP 1.2 alerts become draft broadcasts for a person to review: nothing is ever sent by an alert itself.

:func:`parse` reads one ``<alert>`` (defusedxml: no entities, no external references); :func:`receive`
applies it in one transaction: an Alert for areas the gazetteer has (by P-code geocode, or by a polygon
or circle around an area's coordinates) makes a draft broadcast with the headline and instruction of
each ``<info>`` language; an Update changes that draft, a Cancel withdraws it. A broadcast already sent
is never touched: the update is recorded beside it, for the responder to see.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException, ElementTree
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.i18n import LANGUAGES
from campaigns import broadcasts
from domain.areas import Gazetteer
from registry import audit, schema
from registry.db import Database
from registry.times import iso

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MSG_TYPES = ("Alert", "Update", "Cancel")
EARTH_KM = 6371.0
MAX_TEXT = 1500  # characters of one language's text: headline and instruction


class CapError(ValueError):
    """A document that is not a usable CAP 1.2 alert; the message says why, in one line."""


@dataclass(frozen=True)
class CapArea:
    """Where an ``<info>`` applies: P-codes, polygons [(lat, lon), ...] and circles (lat, lon, km)."""

    geocodes: tuple[str, ...] = ()
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True)
class CapAlert:
    """The parts of a CAP alert Beacon uses."""

    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    references: tuple[tuple[str, str], ...]  # (sender, identifier) of earlier messages
    texts: dict[str, str]  # language -> headline and instruction
    headline: str
    areas: tuple[CapArea, ...]


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(element: Element, name: str) -> str:
    found = element.find(_q(name))
    return (found.text or "").strip() if found is not None else ""


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.split(r"[\s,]+", text.strip()) if x]


def _area(element: Element) -> CapArea:
    geocodes = tuple(_text(g, "value") for g in element.findall(_q("geocode")) if _text(g, "value"))
    polygons = []
    for polygon in element.findall(_q("polygon")):
        values = _numbers(polygon.text or "")
        if len(values) >= 8 and len(values) % 2 == 0:
            polygons.append(tuple((values[k], values[k + 1]) for k in range(0, len(values), 2)))
    circles = []
    for circle in element.findall(_q("circle")):
        values = _numbers(circle.text or "")
        if len(values) == 3:
            circles.append((values[0], values[1], values[2]))
    return CapArea(geocodes, tuple(polygons), tuple(circles))


def parse(document: bytes | str) -> CapAlert:
    """Read a CAP 1.2 ``<alert>``; CapError with a one-line reason for anything else."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise CapError(f"not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:  # a DTD, entity or external reference: never expanded
        raise CapError(f"refused XML ({type(exc).__name__})") from None
    return parse_element(root)


def parse_element(root: Element) -> CapAlert:
    """A parsed ``<alert>`` element as a :class:`CapAlert`."""
    if root.tag != _q("alert"):
        raise CapError(f"not a CAP 1.2 alert: the root element must be <alert> in the namespace {NS}")
    fields = {name: _text(root, name) for name in ("identifier", "sender", "sent", "status", "msgType")}
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise CapError(f"CAP alert without {', '.join(missing)}")
    if fields["msgType"] not in (*MSG_TYPES, "Ack", "Error"):
        raise CapError(f"unknown msgType {fields['msgType']!r}")
    references = []
    for item in _text(root, "references").split():
        parts = item.split(",")
        if len(parts) >= 2:
            references.append((parts[0], parts[1]))
    texts: dict[str, str] = {}
    areas: list[CapArea] = []
    headline = ""
    for info in root.findall(_q("info")):
        language = (_text(info, "language") or "en-US").split("-")[0].lower()
        said = "\n".join(part for part in (_text(info, "headline"), _text(info, "instruction")) if part)
        headline = headline or _text(info, "headline")
        if said and language in LANGUAGES and language not in texts:
            texts[language] = said[:MAX_TEXT]
        areas.extend(_area(a) for a in info.findall(_q("area")))
    return CapAlert(fields["identifier"], fields["sender"], fields["sent"], fields["status"], fields["msgType"],
                    tuple(references), texts, headline[:500], tuple(areas))


def alerts_in(document: bytes) -> Iterator[CapAlert | str]:
    """Every CAP alert in a feed body: itself, alerts inside a list or Atom entries, and the links of Atom
    entries without one inline (yielded as URLs to fetch)."""
    try:
        root = ElementTree.fromstring(document)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise CapError(f"the feed is not usable XML ({type(exc).__name__})") from None
    if root.tag == _q("alert"):
        yield parse_element(root)
        return
    atom = "{http://www.w3.org/2005/Atom}"
    for element in root.iter(_q("alert")):
        yield parse_element(element)
    for entry in root.iter(f"{atom}entry"):
        if entry.find(f".//{_q('alert')}") is not None:
            continue
        for link in entry.findall(f"{atom}link"):
            if link.get("href") and link.get("rel", "alternate") in ("alternate", "related", "enclosure"):
                yield str(link.get("href"))
                break


def _inside(lat: float, lon: float, polygon: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting: whether the point is inside the polygon (CAP points are "lat,lon")."""
    inside = False
    for (a_lat, a_lon), (b_lat, b_lon) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (a_lat > lat) != (b_lat > lat):
            cross = a_lon + (lat - a_lat) * (b_lon - a_lon) / (b_lat - a_lat)
            if lon < cross:
                inside = not inside
    return inside


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(h))


def matching_areas(gazetteer: Gazetteer, alert: CapAlert) -> list[str]:
    """The gazetteer's areas the alert covers: by P-code, or whose coordinates a polygon or circle contains."""
    codes = {code.strip().upper() for area in alert.areas for code in area.geocodes}
    found = []
    for area in gazetteer.areas.values():
        if area.pcode and area.pcode.upper() in codes:
            found.append(area.id)
            continue
        if area.lat is None or area.lon is None:
            continue
        lat, lon = area.lat, area.lon
        if any(_inside(lat, lon, polygon) for cap_area in alert.areas for polygon in cap_area.polygons) or any(
                _distance_km(lat, lon, c_lat, c_lon) <= km for cap_area in alert.areas
                for c_lat, c_lon, km in cap_area.circles):
            found.append(area.id)
    # An area whose parent is covered is reached through it already.
    return sorted(a for a in found if gazetteer.areas[a].parent not in found)


@dataclass(frozen=True)
class Outcome:
    """What one CAP message did."""

    outcome: str  # drafted | updated | withdrawn | noted | duplicate | ignored | no_area | unknown_reference
    broadcast_id: int | None = None


async def _referenced(conn: AsyncConnection, alert: CapAlert) -> Any:
    """The broadcast an Update or Cancel refers to (the newest one among its references)."""
    c = schema.cap_alerts.c
    for sender, identifier in reversed(alert.references):
        found = (await conn.execute(select(c.broadcast_id).where(
            c.sender == sender, c.identifier == identifier, c.broadcast_id.is_not(None)))).scalar()
        if found is not None:
            return (await conn.execute(select(schema.broadcasts).where(schema.broadcasts.c.id == found))).first()
    return None


async def receive(db: Database, gazetteer: Gazetteer, alert: CapAlert, by: str) -> Outcome:
    """Apply one CAP message (once: a repeat of the same sender and identifier is a duplicate), audited."""
    try:
        async with db.write() as conn:
            outcome = await _apply(conn, gazetteer, alert, by)
            await conn.execute(schema.cap_alerts.insert().values(
                sender=alert.sender[:200], identifier=alert.identifier[:200], sent=alert.sent[:40],
                msg_type=alert.msg_type, headline=alert.headline or None, broadcast_id=outcome.broadcast_id,
                outcome=outcome.outcome, received_by=by, received_at=datetime.now(UTC)))
            await audit.append(conn, by, "cap.received", str(outcome.broadcast_id) if outcome.broadcast_id else None,
                               {"msg_type": alert.msg_type, "outcome": outcome.outcome})
    except IntegrityError:
        return Outcome("duplicate")
    return outcome


async def _apply(conn: AsyncConnection, gazetteer: Gazetteer, alert: CapAlert, by: str) -> Outcome:
    if alert.status != "Actual" or alert.msg_type not in MSG_TYPES:
        return Outcome("ignored")  # tests, exercises, acknowledgements: nothing to tell people
    b = schema.broadcasts.c
    if alert.msg_type == "Alert":
        areas = matching_areas(gazetteer, alert)
        if not areas or not alert.texts:
            return Outcome("no_area" if not areas else "no_text")
        broadcast_id = await broadcasts.insert_draft(conn, texts_by_language=alert.texts,
                                                     audience=broadcasts.Audience(areas=tuple(areas)), created_by=by)
        return Outcome("drafted", broadcast_id)
    target = await _referenced(conn, alert)
    if target is None:
        return Outcome("unknown_reference")
    if target.status != "draft":
        return Outcome("noted", target.id)  # already sent or cancelled: shown beside it, never changed
    if alert.msg_type == "Cancel":
        await conn.execute(update(schema.broadcasts).where(b.id == target.id).values(
            status="withdrawn", finished_at=datetime.now(UTC)))
        await audit.append(conn, by, "broadcast.withdrawn", str(target.id))
        return Outcome("withdrawn", target.id)
    areas = matching_areas(gazetteer, alert)
    values: dict[str, Any] = {}
    if alert.texts:
        values["texts"] = alert.texts
    if areas:
        values["audience"] = broadcasts.Audience(areas=tuple(areas)).to_json()
    if values:
        await conn.execute(update(schema.broadcasts).where(b.id == target.id).values(**values))
    return Outcome("updated", target.id)


def _view(row: Any) -> dict[str, Any]:
    return {"identifier": row.identifier, "sender": row.sender, "sent": row.sent, "msg_type": row.msg_type,
            "headline": row.headline, "outcome": row.outcome, "received_at": iso(row.received_at)}


async def history(conn: AsyncConnection, broadcast_id: int) -> list[dict[str, Any]]:
    """The CAP messages that made or concern a broadcast, oldest first."""
    c = schema.cap_alerts.c
    rows = (await conn.execute(select(schema.cap_alerts).where(c.broadcast_id == broadcast_id).order_by(c.id))).all()
    return [_view(r) for r in rows]


async def drafts(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Drafts waiting for a responder, and those a Cancel withdrew, newest first, each with its CAP messages."""
    b, c = schema.broadcasts.c, schema.cap_alerts.c
    rows = (await conn.execute(select(b.id, b.status, b.texts, b.audience, b.created_at, b.created_by)
                               .where(b.status.in_(("draft", "withdrawn"))).order_by(b.id.desc()).limit(limit))).all()
    messages: dict[int, list[dict[str, Any]]] = {int(r.id): [] for r in rows}
    if messages:
        for alert in (await conn.execute(select(schema.cap_alerts).where(c.broadcast_id.in_(list(messages)))
                                         .order_by(c.id))).all():
            messages[int(alert.broadcast_id)].append(_view(alert))
    return [{"id": int(r.id), "status": r.status, "texts": r.texts, "areas": list(r.audience.get("areas") or []),
             "created_at": iso(r.created_at), "created_by": r.created_by, "cap": messages[int(r.id)]} for r in rows]
