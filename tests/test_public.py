"""The public aggregates: off by default (404), and when on, the coarsest table at the higher public minimum
cell, served from a copy refreshed on a schedule, without login."""

from __future__ import annotations

import csv
import io

import pytest

from beacon import config, public
from tests.conftest import Running, StartBeacon
from tests.helpers import eventually
from tests.seeding import seed_profiles
from tests.test_sharing import bearer


async def seed(beacon: Running, first_id: int, **areas: int) -> None:
    people = [{"area_id": area} for area, count in areas.items() for _ in range(count)]
    await seed_profiles(beacon.beacon.db, beacon.beacon.keys, people, first_id=first_id)


async def test_public_aggregates_are_off_by_default(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for path in ("/public", "/public.json", "/public.csv"):
        assert (await beacon.client.get(path)).status == 404


def test_public_min_cell_is_never_below_the_service_one() -> None:
    assert config.load({"BEACON_MIN_CELL": "5"}).public_min_cell == 10
    with pytest.raises(config.ConfigError, match="BEACON_PUBLIC_MIN_CELL must be at least"):
        config.load({"BEACON_MIN_CELL": "5", "BEACON_PUBLIC_MIN_CELL": "4"})
    with pytest.raises(config.ConfigError, match="BEACON_PUBLIC_STATS"):
        config.load({"BEACON_PUBLIC_STATS": "yes"})


async def test_public_page_suppresses_at_the_higher_min_cell(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_PUBLIC_STATS="on")  # public min cell: 6
    await eventually(lambda: beacon.beacon.public.current is not None)  # the refresh at start
    await seed(beacon, 1, tripoli=30, misrata=5, benghazi=4)
    await public.refresh(beacon.beacon)  # what the schedule does

    response = await beacon.client.get("/public.json")  # no token
    assert response.status == 200 and "public" in response.headers["Cache-Control"]
    body = await response.json()
    assert body["min_cell"] == 6 and body["data_as_of"] and "withheld" in body["method"]
    cells = {c["area"]: c for c in body["cells"]}
    assert cells["tripoli"]["count"] == 30 and cells["tripoli"]["pcode"] == "LY0106"
    assert cells["misrata"]["suppressed"] and cells["benghazi"]["suppressed"]  # 5 and 4: below 6
    analyst = await bearer(beacon, "analyst", "ana")
    inside = await (await beacon.client.get("/api/v1/stats?by=area", headers=analyst)).json()
    assert {c["area"]: c["count"] for c in inside["cells"]}["misrata"] == 5  # published at the service's 3

    page = await beacon.client.get("/public")
    text = await page.text()
    assert page.status == 200 and "Data as of" in text and "Method" in text and "withheld" in text
    assert ">30<" in text and ">5<" not in text
    rows = list(csv.reader(line for line in io.StringIO(await (await beacon.client.get("/public.csv")).text())
                           if not line.startswith("#")))
    assert rows[0][-1] == "count" and {r[0]: r[-1] for r in rows[2:]}["misrata"] == ""

    # served from the kept copy: new registrations show only after the next refresh
    await seed(beacon, 100, misrata=10, benghazi=10)
    assert (await (await beacon.client.get("/public.json")).json())["cells"] == body["cells"]
    await public.refresh(beacon.beacon)
    cells = {c["area"]: c for c in (await (await beacon.client.get("/public.json")).json())["cells"]}
    assert (cells["misrata"]["count"], cells["benghazi"]["count"]) == (15, 14)


async def test_public_page_in_the_readers_language(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_PUBLIC_STATS="on")
    await eventually(lambda: beacon.beacon.public.current is not None)
    await seed(beacon, 1, tripoli=30, misrata=5)
    await public.refresh(beacon.beacon)
    tripoli = beacon.beacon.gazetteer.areas["tripoli"]

    arabic = await beacon.client.get("/public?lang=ar")
    text = await arabic.text()
    assert arabic.status == 200 and 'lang="ar" dir="rtl"' in text and "Accept-Language" in arabic.headers["Vary"]
    assert "الأشخاص المسجلون حسب المنطقة" in text and "المنهجية" in text and "محجوب" in text
    assert f"<td>{tripoli.name('ar')}</td>" in text and "Method" not in text and ">withheld<" not in text
    french = await (await beacon.client.get("/public", headers={"Accept-Language": "fr-FR,fr;q=0.9"})).text()
    assert 'lang="fr" dir="ltr"' in french and "Méthode" in french and "masqué" in french
    assert "Les nombres inférieurs à 6 sont masqués" in french  # the public minimum cell, in the sentence
    english = await (await beacon.client.get("/public", headers={"Accept-Language": "sw"})).text()
    assert 'lang="en"' in english and "Counts below 6 are withheld" in english
    # the machine-readable forms do not change with the reader's language
    assert (await (await beacon.client.get("/public.json?lang=ar")).json())["title"] == public.TITLE
