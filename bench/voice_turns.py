"""How long Beacon takes to answer one webhook of a phone call, against an SMS webhook in the same run.

How to run, from the repository root (under a minute)::

    .venv/bin/python bench/voice_turns.py
    .venv/bin/python bench/voice_turns.py --callers 200 --concurrency 20

A call waits for the answer to every key pressed (Twilio's timeout is 15 s; a caller notices far
sooner), whereas an SMS webhook is answered once the message is stored and the bot runs after. Each
round runs, in turn, ``--callers`` new callers registering by keypad (dial, language, consent, area:
four turns each, every turn one transaction that stores the keys, runs ``bot.ivr`` and applies the
effects) and as many signed SMS webhooks, both over real HTTP on 127.0.0.1 against the real app on
a SQLite file. Printed: p50/p99 of a call turn and of an SMS webhook, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from beacon import config  # noqa: E402
from beacon.app import create_app  # noqa: E402
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, dev_keys  # noqa: E402
from tests.doubles.twilio_api import sign  # noqa: E402
from tests.doubles.twilio_voice import Phone  # noqa: E402

PUBLIC_URL = "https://beacon.example.org"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(callers: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.load({
            "BEACON_DATABASE_URL": f"sqlite:///{tmp}/beacon.db", "BEACON_KEYS": dev_keys(),
            "BEACON_PUBLIC_URL": PUBLIC_URL, "BEACON_RATE_LIMITS": "off", "BEACON_LOG_LEVEL": "warning",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_API_BASE_URL": "http://127.0.0.1:9"})  # replies are never sent: the worker is off
        runner = web.AppRunner(create_app(settings, worker=False), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        turns: list[float] = []
        sms: list[float] = []
        async with aiohttp.ClientSession() as session:
            async def post(path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
                async with session.post(base + path, data=form, headers=headers) as response:
                    return response.status, await response.text()

            async def timed(path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
                started = time.perf_counter()
                answer = await post(path, form, headers)
                turns.append(time.perf_counter() - started)
                return answer

            limit = asyncio.Semaphore(concurrency)
            serial = 0

            async def caller() -> None:
                nonlocal serial
                serial += 1
                number = f"+23480{serial:08d}"
                async with limit:
                    phone = Phone(timed, AUTH_TOKEN, PUBLIC_URL, number, "+15005550007")
                    await phone.dial()
                    for key in ("1", "1", "1"):
                        await phone.press(key)

            async def text() -> None:
                nonlocal serial
                serial += 1
                params = {"MessageSid": f"SM{serial:032d}", "AccountSid": ACCOUNT_SID, "From": f"+23481{serial:08d}",
                          "To": SMS_FROM, "Body": "JOIN", "NumMedia": "0"}
                headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio/messages", params)}
                async with limit:
                    started = time.perf_counter()
                    status, _ = await post("/webhooks/twilio/messages", params, headers)
                    sms.append(time.perf_counter() - started)
                    assert status == 200

            for n in range(rounds):
                turns.clear()
                sms.clear()
                await asyncio.gather(*(caller() for _ in range(callers)))
                await asyncio.gather(*(text() for _ in range(callers)))
                print(f"round {n + 1}: call turn p50 {percentile(turns, 0.5) * 1000:.1f} ms, "
                      f"p99 {percentile(turns, 0.99) * 1000:.1f} ms | SMS webhook p50 "
                      f"{percentile(sms, 0.5) * 1000:.1f} ms, p99 {percentile(sms, 0.99) * 1000:.1f} ms | "
                      f"ratio of p50s {statistics.median(turns) / statistics.median(sms):.2f}")
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.callers, options.concurrency, options.rounds))
