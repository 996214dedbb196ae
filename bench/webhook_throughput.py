"""Signed Twilio inbound webhooks per second, end to end, against a bare aiohttp handler.

How to run, from the repository root (a minute or two)::

    .venv/bin/python bench/webhook_throughput.py
    .venv/bin/python bench/webhook_throughput.py --requests 8000 --concurrency 128 --rounds 7

Two servers are measured in the same run, in turn (bare, beacon, bare, beacon, ...), with the same
load, and their medians compared, so that a busy machine favours neither:

* **bare** - an aiohttp app whose handler parses the form and answers the empty TwiML, nothing else;
* **beacon** - the real app (``create_app``, SQLite file, sender running, replies going to a local
  Twilio double): each webhook is validated with the SDK's ``RequestValidator``, stored and
  deduplicated (concurrent webhooks share a transaction) and answered; the bot runs after.

The load is real HTTP over 127.0.0.1 from a separate process (``--pin``: servers on CPU 0, load
generator on the other CPUs): ``--concurrency`` clients, each request a new
``MessageSid`` from one of ``--senders`` numbers, signed in advance the way Twilio signs.

Printed per round: webhooks per second, p50/p99 latency, and how long the bot then took to answer
everyone (in a burst beyond what the bot can follow, webhooks are answered first and the bot
catches up after). At the end: the median ratio beacon/bare, target >= 50%. The bare figure is
bounded by the load generator, so the ratio is hardest to reach on a quiet, fast machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

PATH = "/webhooks/twilio/messages"
PUBLIC_URL = "https://beacon.example.org"  # what Twilio signs; the Host header plays no part
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
SMS_FROM = "+15005550006"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# -- the load generator (runs in a child process) -------------------------------------------------


def _requests(count: int, senders: int) -> list[tuple[dict[str, str], bytes]]:
    """Signed form bodies, built before the clock starts (signing is Twilio's work, not ours)."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    made = []
    for i in range(count):
        params = {"ToCountry": "US", "SmsMessageSid": "", "NumMedia": "0", "ToCity": "", "FromZip": "",
                  "SmsSid": "", "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": "JOIN",
                  "FromCountry": "NG", "To": SMS_FROM, "ToZip": "", "NumSegments": "1", "MessageSid": "",
                  "AccountSid": ACCOUNT_SID, "From": f"+23480{i % senders:08d}", "ApiVersion": "2010-04-01"}
        sid = "SM" + secrets.token_hex(16)
        params.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": validator.compute_signature(PUBLIC_URL + PATH, params),
                   "User-Agent": "TwilioProxy/1.1"}
        made.append((headers, urlencode(params).encode()))
    return made


async def _load(url: str, count: int, concurrency: int, senders: int, warmup: int) -> dict[str, Any]:
    requests = _requests(warmup + count, senders)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(headers: dict[str, str], body: bytes) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200 and answer.decode() != TWIML:
                    statuses[-1] = statuses.get(-1, 0) + 1
            latencies.append(time.perf_counter() - started)

        async def run(batch: list[tuple[dict[str, str], bytes]]) -> float:
            queue = iter(batch)

            async def client() -> None:
                for headers, body in queue:
                    await one(headers, body)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            return time.perf_counter() - started

        await run(requests[:warmup])
        latencies.clear()
        statuses.clear()
        seconds = await run(requests[warmup:])
    latencies.sort()
    return {"count": count, "seconds": seconds, "rps": count / seconds, "statuses": statuses,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def client_main(args: argparse.Namespace) -> None:
    result = asyncio.run(_load(args.client, args.requests, args.concurrency, args.senders, args.warmup))
    print(json.dumps(result))


async def drive(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the load generator in a child process against ``url`` while this loop keeps serving."""
    command = [sys.executable, __file__, "--client", url, "--requests", str(args.requests),
               "--concurrency", str(args.concurrency), "--senders", str(args.senders), "--warmup", str(args.warmup)]
    process = await asyncio.create_subprocess_exec(*_pinned(command, client=True), stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit("load generator failed")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


PIN = False  # --pin


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pinned(command: list[str], *, client: bool) -> list[str]:
    """With --pin, keep the load generator off the servers' CPU (the servers pin themselves to CPU 0)."""
    cpus = _cpus()
    if not PIN or len(cpus) < 2 or not shutil.which("taskset"):
        return command
    return ["taskset", "-c", ",".join(str(c) for c in cpus[1:]) if client else str(cpus[0]), *command]


async def warm_up(url: str, app: web.Application) -> None:
    """A few messages through the whole path first: a server that has been running has its catalogs loaded."""
    async with aiohttp.ClientSession() as session:
        for headers, body in _requests(20, 20):
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
    await settled(app)


# -- the servers ----------------------------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}{PATH}"


def bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=TWIML, content_type="text/xml")

    app = web.Application()
    app.router.add_post(PATH, handler)
    return app


async def settled(app: web.Application) -> tuple[int, float]:
    """Wait until the bot has processed every stored message and every reply has left: (stored, seconds)."""
    from sqlalchemy import func, select

    from beacon.context import BEACON
    from registry import schema

    started = time.perf_counter()
    running = app[BEACON]
    inbound, outbox = schema.inbound, schema.outbox
    while True:
        async with running.db.read() as conn:
            stored = (await conn.execute(select(func.count()).select_from(inbound))).scalar() or 0
            left = (await conn.execute(select(func.count()).select_from(inbound).where(
                inbound.c.processed_at.is_(None)))).scalar()
            pending = (await conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.status.in_(("queued", "claimed"))))).scalar()
        if not left and not pending and not running.service._tasks:
            return stored, time.perf_counter() - started
        await asyncio.sleep(0.05)


def describe(name: str, r: dict[str, Any]) -> str:
    return (f"{name:>6}: {r['rps']:8.0f} webhooks/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
            f"statuses {r['statuses']}")


async def main(args: argparse.Namespace) -> None:
    from beacon import config
    from beacon.app import create_app
    from beacon.logs import configure
    from tests.doubles.twilio_api import TwilioDouble

    print(f"{args.rounds} rounds of {args.requests} signed webhooks each against both servers, in turn; "
          f"{args.concurrency} concurrent clients, {args.senders} senders", flush=True)
    double = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
    await double.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.load({
            "BEACON_ENV": "production", "BEACON_METRICS": "off", "BEACON_DATABASE_URL": f"sqlite:///{tmp}/beacon.db",
            "BEACON_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "BEACON_PUBLIC_URL": PUBLIC_URL, "BEACON_LOG_LEVEL": "warning", "BEACON_RATE_LIMITS": "off",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_API_BASE_URL": double.base_url,
        })
        configure(settings.log_format, settings.log_level)
        beacon_app = create_app(settings)
        bare_runner, bare_url = await serve(bare_app())
        beacon_runner, beacon_url = await serve(beacon_app)
        await warm_up(beacon_url, beacon_app)
        plain: list[float] = []
        full: list[float] = []
        try:
            for n in range(1, args.rounds + 1):
                result = await drive(bare_url, args)
                plain.append(result["rps"])
                print(f"round {n} " + describe("bare", result), flush=True)
                result = await drive(beacon_url, args)
                full.append(result["rps"])
                print(f"round {n} " + describe("beacon", result), flush=True)
                stored, backlog = await settled(beacon_app)
                print(f"         then the bot answered everyone in {backlog:.1f} s "
                      f"({stored} messages stored in all, {len(double.messages)} replies sent)", flush=True)
        finally:
            await beacon_runner.cleanup()
            await bare_runner.cleanup()
            await double.close()
    ratio = statistics.median(full) / statistics.median(plain)
    print(f"median bare {statistics.median(plain):.0f}/s, median beacon {statistics.median(full):.0f}/s")
    print(f"ratio beacon/bare: {ratio:.0%} (target >= 50%) -> {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--senders", type=int, default=1000, help="distinct phone numbers")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, load generator on the others (helps on an otherwise idle machine)")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the load generator
    arguments = parser.parse_args()
    if arguments.client:
        client_main(arguments)
    else:
        PIN = arguments.pin
        if PIN and len(_cpus()) >= 2:
            os.sched_setaffinity(0, {_cpus()[0]})  # the servers on one CPU, the load generator on the others
        asyncio.run(main(arguments))
