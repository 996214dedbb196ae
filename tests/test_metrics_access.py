"""Who may read /metrics: anyone in development; in production only with the bearer token, or on a listen
address of its own (served by `beacon serve` and `beacon worker`, and then not on the main app), or nobody
(BEACON_METRICS=off). Production refuses to start otherwise."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from beacon import config, metrics
from tests.conftest import StartBeacon, dev_keys, environment

TOKEN = "metrics-" + "7" * 24
BEACON = Path(sys.executable).parent / "beacon"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def production(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return environment(tmp_path, BEACON_ENV="production", **overrides)


async def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


# -- the rule --------------------------------------------------------------------------------------------------------


def test_production_refuses_to_start_with_metrics_open_to_all(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="BEACON_METRICS_TOKEN or BEACON_METRICS_PORT") as refused:
        config.load(production(tmp_path))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("overrides", [{"BEACON_METRICS_TOKEN": TOKEN}, {"BEACON_METRICS_PORT": "9464"},
                                       {"BEACON_METRICS": "off"}])
def test_production_starts_with_a_token_a_metrics_address_or_metrics_off(tmp_path: Path,
                                                                         overrides: dict[str, str]) -> None:
    settings = config.load(production(tmp_path, **overrides))
    assert (settings.metrics_token, settings.metrics_port, settings.metrics) == (
        overrides.get("BEACON_METRICS_TOKEN"), 9464 if "BEACON_METRICS_PORT" in overrides else None,
        "BEACON_METRICS" not in overrides)


@pytest.mark.parametrize(("overrides", "says"), [
    ({"BEACON_METRICS_TOKEN": "short"}, "at least 16"),
    ({"BEACON_METRICS_HOST": "10.0.0.5"}, "needs BEACON_METRICS_PORT"),
    ({"BEACON_METRICS_PORT": "8080"}, "differ from BEACON_PORT"),
    ({"BEACON_METRICS_PORT": "abc"}, "integer"),
    ({"BEACON_METRICS": "off", "BEACON_METRICS_TOKEN": TOKEN}, "serves no metrics"),
    ({"BEACON_METRICS": "maybe"}, "on or off"),
])
def test_unclear_metrics_settings_are_refused(tmp_path: Path, overrides: dict[str, str], says: str) -> None:
    with pytest.raises(config.ConfigError, match=says):
        config.load(environment(tmp_path, **overrides))


# -- on the main app -------------------------------------------------------------------------------------------------


async def test_development_serves_metrics_to_anyone(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    response = await run.client.get("/metrics")
    assert response.status == 200 and "beacon_outbound_total" in await response.text()


async def test_with_a_token_metrics_need_it(start_beacon: StartBeacon) -> None:
    run = await start_beacon(BEACON_ENV="production", BEACON_SIMULATOR="off", BEACON_METRICS_TOKEN=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await run.client.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert "beacon_" not in await response.text()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await run.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and "beacon_outbound_total" in await response.text()


async def test_metrics_off_serves_none(start_beacon: StartBeacon) -> None:
    run = await start_beacon(BEACON_ENV="production", BEACON_SIMULATOR="off", BEACON_METRICS="off")
    assert (await run.client.get("/metrics")).status == 404
    assert (await run.client.get("/healthz")).status == 200


# -- on an address of their own ----------------------------------------------------------------------------------------


async def test_a_metrics_address_moves_metrics_off_the_main_app(start_beacon: StartBeacon) -> None:
    port = free_port()
    run = await start_beacon(BEACON_METRICS_PORT=str(port), BEACON_METRICS_TOKEN=TOKEN)
    assert (await run.client.get("/metrics")).status == 404
    async with metrics.listener(run.settings):
        assert (await fetch(f"http://127.0.0.1:{port}/metrics"))[0] == 401
        status, body = await fetch(f"http://127.0.0.1:{port}/metrics", TOKEN)
        assert status == 200 and "beacon_outbound_total" in body


async def run_until_metrics(tmp_path: Path, *args: str, **overrides: str) -> list[tuple[int, str]]:
    """Start ``beacon args`` with a metrics address; fetch /metrics there (and the main app's), stop it."""
    metrics_port, main_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))}
    env.update({"BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}", "BEACON_KEYS": dev_keys(),
                "BEACON_LOG_FORMAT": "json", "BEACON_PORT": str(main_port),
                "BEACON_METRICS_PORT": str(metrics_port), **overrides})
    process = await asyncio.create_subprocess_exec(str(BEACON), *args, env=env, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    seen: list[tuple[int, str]] = []
    try:
        async with asyncio.timeout(30):
            while not seen:
                assert process.returncode is None, "beacon exited"
                try:
                    seen.append(await fetch(f"http://127.0.0.1:{metrics_port}/metrics", overrides.get(
                        "BEACON_METRICS_TOKEN")))
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            if args[0] == "serve":
                seen.append(await fetch(f"http://127.0.0.1:{main_port}/metrics"))
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
        assert "Traceback" not in err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return seen


@pytest.mark.slow
async def test_beacon_serve_serves_metrics_on_their_own_address_only(tmp_path: Path) -> None:
    [(status, body), (main_status, _)] = await run_until_metrics(tmp_path, "serve")
    assert status == 200 and "beacon_outbound_total" in body
    assert main_status == 404


@pytest.mark.slow
async def test_beacon_worker_serves_metrics_behind_the_token(tmp_path: Path) -> None:
    [(status, body)] = await run_until_metrics(tmp_path, "worker", BEACON_METRICS_TOKEN=TOKEN)
    assert status == 200 and "beacon_outbound_total" in body
