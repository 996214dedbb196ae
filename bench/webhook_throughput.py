"""Signed Twilio inbound webhooks per second, end to end, against a bare aiohttp handler.

How to run, from the repository root (about half a minute)::

    .venv/bin/python bench/webhook_throughput.py
    .venv/bin/python bench/webhook_throughput.py --requests 8000 --concurrency 128

Two servers are measured in the same run, one after the other, with the same load:

* **bare** - an aiohttp app whose handler parses the form and answers the empty TwiML, nothing else;
* **beacon** - the real app (``create_app``, SQLite file, sender running, replies going to a local
  Twilio double): each webhook is validated with the SDK's ``RequestValidator``, stored and
  deduplicated in its own transaction and answered; the bot runs after the answer.

The load is real HTTP over 127.0.0.1 from a separate process (so the server keeps a core to
itself): ``--concurrency`` clients, each request a new ``MessageSid`` from one of ``--senders``
numbers, signed in advance the way Twilio signs. Printed: requests per second, p50/p99 latency,
the ratio beacon/bare (target >= 50%), and how long the bot then needed to answer everyone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
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
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", url, "--requests", str(args.requests),
        "--concurrency", str(args.concurrency), "--senders", str(args.senders), "--warmup", str(args.warmup),
        stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit("load generator failed")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# -- the servers ----------------------------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}{PATH}"


async def bare(args: argparse.Namespace) -> dict[str, Any]:
    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=TWIML, content_type="text/xml")

    app = web.Application()
    app.router.add_post(PATH, handler)
    runner, url = await serve(app)
    try:
        return await drive(url, args)
    finally:
        await runner.cleanup()


async def beacon(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from beacon import config
    from beacon.app import BEACON, create_app
    from beacon.logs import configure
    from registry import schema
    from tests.doubles.twilio_api import TwilioDouble

    double = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
    await double.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.load({
            "BEACON_ENV": "production", "BEACON_DATABASE_URL": f"sqlite:///{tmp}/beacon.db",
            "BEACON_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "BEACON_PUBLIC_URL": PUBLIC_URL, "BEACON_LOG_LEVEL": "warning", "BEACON_RATE_LIMITS": "off",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_API_BASE_URL": double.base_url,
        })
        configure(settings.log_format, settings.log_level)
        app = create_app(settings)
        runner, url = await serve(app)
        try:
            result = await drive(url, args)
            answered = time.perf_counter()
            running = app[BEACON]
            inbound = schema.inbound.c
            async with running.db.read() as conn:
                stored = (await conn.execute(select(func.count()).select_from(schema.inbound))).scalar()
            while True:  # the bot's work after the answers: process everything, send every reply
                async with running.db.read() as conn:
                    left = (await conn.execute(select(func.count()).select_from(schema.inbound).where(
                        inbound.processed_at.is_(None)))).scalar()
                    pending = (await conn.execute(select(func.count()).select_from(schema.outbox).where(
                        schema.outbox.c.status.in_(("queued", "claimed"))))).scalar()
                if not left and not pending and not running.service._tasks:
                    break
                await asyncio.sleep(0.05)
            result.update(stored=stored, backlog_seconds=time.perf_counter() - answered, replies=len(double.messages))
        finally:
            await runner.cleanup()
            await double.close()
    return result


def describe(name: str, r: dict[str, Any]) -> str:
    return (f"{name:>6}: {r['rps']:8.0f} webhooks/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
            f"statuses {r['statuses']}")


async def main(args: argparse.Namespace) -> None:
    print(f"{args.requests} signed webhooks, {args.concurrency} concurrent clients, {args.senders} senders, "
          f"after {args.warmup} warm-up requests", flush=True)
    plain = await bare(args)
    print(describe("bare", plain), flush=True)
    full = await beacon(args)
    print(describe("beacon", full), flush=True)
    total = args.warmup + args.requests
    print(f"stored {full['stored']}/{total} inbound rows; the bot then needed {full['backlog_seconds']:.1f} s "
          f"to process them all and send {full['replies']} replies")
    ratio = full["rps"] / plain["rps"]
    print(f"ratio beacon/bare: {ratio:.0%} (target >= 50%) -> {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--senders", type=int, default=1000, help="distinct phone numbers")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the load generator
    arguments = parser.parse_args()
    if arguments.client:
        client_main(arguments)
    else:
        asyncio.run(main(arguments))
