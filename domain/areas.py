"""The gazetteer: the coarse areas people may register in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from domain.text import normalise

SAMPLE = Path(__file__).parent / "data" / "areas.json"


class GazetteerError(Exception):
    """An areas file that cannot be used."""


@dataclass(frozen=True, slots=True)
class Area:
    """One area: an id, its names by language, and where it sits."""

    id: str
    names: dict[str, str]
    parent: str | None = None
    pcode: str | None = None
    lat: float | None = None
    lon: float | None = None

    def name(self, language: str) -> str:
        """The area's name in ``language``, else English, else its id."""
        return self.names.get(language) or self.names.get("en") or self.id


class Gazetteer:
    """Areas by id, with name look-up in any language."""

    def __init__(self, areas: list[Area]) -> None:
        self.areas = {area.id: area for area in areas}
        for area in areas:
            if area.parent and area.parent not in self.areas:
                raise GazetteerError(f"area {area.id!r} has unknown parent {area.parent!r}")
        self._by_name: dict[str, str] = {}
        for area in areas:
            for name in (area.id, *area.names.values(), *((area.pcode,) if area.pcode else ())):
                self._by_name.setdefault(normalise(name).replace(" ", ""), area.id)
        self.top_level = tuple(area.id for area in areas if area.parent is None)

    @classmethod
    def load(cls, path: Path | None = None) -> Gazetteer:
        """Read an areas file (JSON list of {id, names, parent?, pcode?, lat?, lon?})."""
        path = path or SAMPLE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            areas = [
                Area(
                    id=str(item["id"]),
                    names={str(k): str(v) for k, v in item["names"].items()},
                    parent=item.get("parent"),
                    pcode=item.get("pcode"),
                    lat=float(item["lat"]) if item.get("lat") is not None else None,
                    lon=float(item["lon"]) if item.get("lon") is not None else None,
                )
                for item in raw
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GazetteerError(f"areas file {path} is not a list of areas: {exc.__class__.__name__}") from None
        if not areas:
            raise GazetteerError(f"areas file {path} is empty")
        return cls(areas)

    def find(self, text: str) -> Area | None:
        """The area a person named (or its id or P-code), in any language, ignoring case, accents and spacing."""
        area_id = self._by_name.get(normalise(text).replace(" ", ""))
        return self.areas[area_id] if area_id else None

    def descendants(self, area_ids: list[str]) -> set[str]:
        """The given areas and every area below them."""
        found = {a for a in area_ids if a in self.areas}
        changed = True
        while changed:
            below = {a.id for a in self.areas.values() if a.parent in found} - found
            found |= below
            changed = bool(below)
        return found
