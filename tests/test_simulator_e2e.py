"""End to end through the running app's simulator endpoint, and the rules that keep it a development tool:
off unless asked for, never beside real providers or on a public address, and never the same person
as a real phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from beacon import config
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, StartBeacon, environment
from tests.helpers import settle

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


@pytest.mark.parametrize("env", [{"BEACON_SIMULATOR": "off"}, {"BEACON_ENV": "production", "BEACON_SIMULATOR": "off",
                                           "BEACON_METRICS": "off"}])
async def test_the_simulator_is_off_unless_asked_for(start_beacon: StartBeacon, env: dict[str, str]) -> None:
    beacon = await start_beacon(**env)
    for method, path in (("POST", "/simulator/messages"), ("GET", "/simulator")):
        response = await beacon.client.request(method, path, json={"from": PHONE, "text": "JOIN"})
        assert response.status == 404


@pytest.mark.parametrize(("overrides", "says"), [
    ({"BEACON_ENV": "production"}, "development only"),
    ({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM}, "Twilio"),
    ({"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_WEBHOOK_SECRET": "s3cret"}, "Telegram"),
    ({"BEACON_HOST": "0.0.0.0"}, "loopback"),
    ({"BEACON_HOST": "192.0.2.10"}, "loopback"),
    ({"BEACON_SIMULATOR": "yes"}, "on or off"),
])
def test_the_simulator_is_refused_where_it_would_be_a_door(tmp_path: Path, overrides: dict[str, str],
                                                           says: str) -> None:
    env = environment(tmp_path, **{"BEACON_SIMULATOR": "on", **overrides})
    with pytest.raises(config.ConfigError, match=says) as refused:
        config.load(env)
    assert "\n" not in str(refused.value)


def test_production_refuses_a_plain_http_public_url(tmp_path: Path) -> None:
    env = environment(tmp_path, BEACON_ENV="production", BEACON_PUBLIC_URL="http://beacon.example.org",
                      BEACON_METRICS="off")
    with pytest.raises(config.ConfigError, match="https"):
        config.load(env)
    assert config.load({**env, "BEACON_PUBLIC_URL": "https://beacon.example.org"}).public_url.startswith("https")


async def test_a_simulated_sender_is_never_a_real_phone(start_beacon: StartBeacon, tmp_path: Path) -> None:
    """Someone who turns the simulator on against a real database reaches no one's record."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    real = await start_beacon(twilio=True, BEACON_DATABASE_URL=database)
    for text in ("JOIN", "1", "YES", "tripoli", "Amina"):
        assert (await real.twilio_inbound(PHONE, text)).status == 200
        await settle(real)
    keys = real.settings.keys
    await real.client.close()
    simulated = await start_beacon(BEACON_DATABASE_URL=database, BEACON_KEYS=keys or "")
    mine = "\n".join(await simulated.simulate(PHONE, "MYDATA"))
    assert "Amina" not in mine and "Tripoli" not in mine
    for text in ("DELETE", "YES"):
        await simulated.simulate(PHONE, text)
    await simulated.client.close()  # SQLite serves one Beacon at a time
    again = await start_beacon(twilio=True, BEACON_DATABASE_URL=database, BEACON_KEYS=keys or "")
    await again.twilio_inbound(PHONE, "MYDATA")
    await settle(again)
    assert again.twilio is not None
    replies = "\n".join(m.body for m in again.twilio.sent_to(PHONE))
    assert "Amina" in replies and "Tripoli" in replies


async def test_bad_simulator_input_is_explained(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for body in ({"from": "nobody", "text": "JOIN"}, {"from": PHONE}, "not json"):
        response = await beacon.client.post("/simulator/messages", json=body)
        assert response.status == 400
        assert (await response.json())["error"]
