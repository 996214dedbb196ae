"""End to end through the running app's simulator endpoint."""

from __future__ import annotations

from tests.conftest import StartBeacon

PHONE = "+2348012345678"


async def test_registration_and_mydata(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    replies = await beacon.simulate(PHONE, "JOIN")
    assert "English" in replies[0] and "العربية" in replies[1]
    assert "agree" in " ".join(await beacon.simulate(PHONE, "1"))
    assert "Tripoli" in " ".join(await beacon.simulate(PHONE, "YES"))
    assert "registered" in " ".join(await beacon.simulate(PHONE, "tripoli"))
    mine = "\n".join(await beacon.converse(PHONE, "Amina", "Nigeria", "0", "0", "0", "0", "MYDATA"))
    assert "Amina" in mine and "Tripoli" in mine and "Nigeria" in mine and PHONE in mine


async def test_simulator_is_development_only(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_ENV="production")
    response = await beacon.client.post("/simulator/messages", json={"from": PHONE, "text": "JOIN"})
    assert response.status == 404


async def test_bad_simulator_input_is_explained(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for body in ({"from": "nobody", "text": "JOIN"}, {"from": PHONE}, "not json"):
        response = await beacon.client.post("/simulator/messages", json=body)
        assert response.status == 400
        assert (await response.json())["error"]
