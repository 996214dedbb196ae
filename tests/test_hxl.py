"""GET /api/v1/stats.hxl.csv end to end: HXL hashtags and P-codes at admin levels 1 and 2, suppressed, and
open to a partner only when its arrangement allows the hxl format."""

from __future__ import annotations

import csv
import io

from tests.conftest import Running, StartBeacon
from tests.seeding import seed_profiles
from tests.test_sharing import bearer, record


async def seed(beacon: Running) -> None:
    people = ([{"area_id": "tripoli", "gender": "female"} for _ in range(22)]
              + [{"area_id": "tajoura", "gender": "male"} for _ in range(8)]
              + [{"area_id": "misrata", "gender": "male"} for _ in range(12)]
              + [{"area_id": "benghazi", "gender": "female"} for _ in range(4)])
    await seed_profiles(beacon.beacon.db, beacon.beacon.keys, people)


async def rows(beacon: Running, path: str, headers: dict[str, str]) -> list[list[str]]:
    response = await beacon.client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    return list(csv.reader(io.StringIO(await response.text())))


async def test_hxl_levels_and_suppression(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="5")
    await seed(beacon)
    analyst = await bearer(beacon, "analyst", "ana")

    adm1 = await rows(beacon, "/api/v1/stats.hxl.csv?level=1", analyst)
    assert adm1[0] == ["date", "adm1_name", "adm1_pcode", "registered"]
    assert adm1[1] == ["#date+reported", "#adm1+name", "#adm1+code", "#affected+registered"]
    by_name = {row[1]: row for row in adm1[2:]}
    assert by_name["Tripoli"][2:] == ["LY0106", "30"]
    assert by_name["Benghazi"][2:] == ["LY0101", ""]  # 4 is below 5: withheld
    assert by_name["Misrata"][3] == ""  # withheld too, else Benghazi = total - the rest
    assert all(row[0] for row in adm1[2:])  # the date the data is as of

    adm2 = await rows(beacon, "/api/v1/stats.hxl.csv?level=2&by=gender", analyst)
    assert adm2[1] == ["#date+reported", "#adm1+name", "#adm1+code", "#adm2+name", "#adm2+code",
                       "#group+gender", "#affected+registered"]
    tajoura = next(row for row in adm2[2:] if row[3] == "Tajoura")
    assert tajoura[1:3] == ["Tripoli", "LY0106"] and tajoura[5:] == ["male", "8"]
    for row in adm2[2:]:
        assert row[-1] == "" or int(row[-1]) >= 5

    for path in ("/api/v1/stats.hxl.csv?level=3", "/api/v1/stats.hxl.csv?by=area"):
        assert (await beacon.client.get(path, headers=analyst)).status == 422


async def test_hxl_for_partners_when_the_arrangement_allows_it(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    await seed(beacon)
    admin = await bearer(beacon, "admin", "adm")
    with_hxl = await bearer(beacon, "partner", "dtm", await record(beacon, admin))  # area level 0, min cell 5
    without = await bearer(beacon, "partner", "other", await record(beacon, admin, formats=["json"]))

    table = await rows(beacon, "/api/v1/stats.hxl.csv?level=1&by=gender", with_hxl)
    assert all(row[-1] == "" or int(row[-1]) >= 5 for row in table[2:])  # the arrangement's minimum cell
    assert (await beacon.client.get("/api/v1/stats.hxl.csv?level=2", headers=with_hxl)).status == 403
    assert (await beacon.client.get("/api/v1/stats.hxl.csv?level=1", headers=without)).status == 403
