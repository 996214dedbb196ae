"""Messages per second the outbox sender delivers to a local Twilio API double, from 10,000 queued rows.

How to run, from the repository root (well under a minute)::

    .venv/bin/python bench/outbox_throughput.py
    .venv/bin/python bench/outbox_throughput.py --messages 20000 --concurrency 400 --pin

What happens: a real Beacon (``open_beacon``: SQLite file, data keys, the Twilio channel with the
official SDK's aiohttp client) with rate limits off (``BEACON_RATE_LIMITS=off``); ``--messages``
rows are queued with ``campaigns.outbox.enqueue`` in batches of ``--batch`` (addresses and texts
sealed, as a broadcast queues them), then the sender loop runs until every row is recorded. The
clock runs from starting the sender until no row is left queued or claimed. The Twilio double runs
in its own process (``--pin``: on CPUs of its own), so its work is not counted as the sender's;
afterwards it reports what it accepted, which must be every message exactly once.

Printed: messages per second (target >= 1,000/s), CPU per message in the sender and in the double,
and the checks (accepted by the double, distinct recipients, outbox rows sent, every sid recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
SMS_FROM = "+15005550006"


# -- the Twilio double, in a child process ---------------------------------------------------------


async def double_main() -> None:
    """Serve the double; print its base URL, then on "report" a JSON summary of what it accepted."""
    from tests.doubles.twilio_api import TwilioDouble

    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as api:
        print(api.base_url, flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"report":
                sids = [m.sid for m in api.messages]
                print(json.dumps({"accepted": len(api.messages), "requests": api.requests, "cpu": time.process_time(),
                                  "distinct_sids": len(set(sids)), "distinct_to": len({m.to for m in api.messages}),
                                  "sids": sids}), flush=True)


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


# -- the sender ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    from sqlalchemy import func, select

    from beacon import config
    from beacon.context import open_beacon
    from beacon.logs import configure
    from campaigns import outbox
    from campaigns.outbox import Draft
    from channels.base import Inbound
    from registry import schema

    command = [sys.executable, __file__, "--double"]
    cpus = _cpus()
    if args.pin and len(cpus) >= 2 and shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(map(str, cpus[1:])), *command]
        os.sched_setaffinity(0, {cpus[0]})
    double = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                  stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                                                  limit=64 * 1024 * 1024)  # the report lists every sid
    assert double.stdin is not None and double.stdout is not None
    base_url = (await double.stdout.readline()).decode().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = config.load({
                "BEACON_ENV": "production", "BEACON_METRICS": "off", "BEACON_DATABASE_URL": f"sqlite:///{tmp}/beacon.db",
                "BEACON_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
                "BEACON_PUBLIC_URL": "https://beacon.example.org", "BEACON_LOG_LEVEL": "warning",
                "BEACON_RATE_LIMITS": "off", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_SMS_FROM": SMS_FROM, "TWILIO_API_BASE_URL": base_url,
            })
            configure(settings.log_format, settings.log_level)
            async with open_beacon(settings) as beacon:
                sender = beacon.sender
                sender._slots = asyncio.Semaphore(args.concurrency)
                # One real registrant the rows belong to, as a broadcast's rows do.
                stored = await beacon.service.receive("twilio", Inbound(
                    channel="sms", address="+2348000000000", text="JOIN", provider_id="SM" + secrets.token_hex(16),
                    received_at=datetime.now(UTC)))
                assert stored is not None
                started = time.perf_counter()
                for first in range(0, args.messages, args.batch):
                    drafts = [Draft(stored.registrant_id, stored.identity_id, "sms", f"+23481{n:08d}",
                                    f"Water and shelter at the school from 6pm. Reply 1 if you are safe. ({n})")
                                   for n in range(first, min(first + args.batch, args.messages))]
                    async with beacon.db.write() as conn:
                        await outbox.enqueue(conn, beacon.keys.ring, drafts)
                queued = time.perf_counter() - started
                print(f"queued {args.messages} rows in {queued:.2f} s "
                      f"({args.messages / queued:.0f} rows/s, batches of {args.batch})", flush=True)

                o = schema.outbox.c
                stop = asyncio.Event()
                started, cpu = time.perf_counter(), time.process_time()
                run = asyncio.create_task(sender.run(stop))
                while True:
                    await asyncio.sleep(0.02)
                    async with beacon.db.read() as conn:
                        left = (await conn.execute(select(func.count()).select_from(schema.outbox).where(
                            o.status.in_(("queued", "claimed"))))).scalar()
                    if not left:
                        break
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                stop.set()
                await run
                async with beacon.db.read() as conn:
                    statuses = dict((await conn.execute(select(o.status, func.count()).group_by(o.status))).all())
                    ours = set((await conn.execute(select(o.provider_id))).scalars().all())
        double.stdin.write(b"report\n")
        await double.stdin.drain()
        report = json.loads(await double.stdout.readline())
    finally:
        if double.stdin is not None:
            double.stdin.close()
        await double.wait()

    rate = args.messages / elapsed
    print(f"sent {args.messages} messages in {elapsed:.2f} s: {rate:.0f} messages/s "
          f"(target >= 1000/s) -> {'OK' if rate >= 1000 else 'BELOW TARGET'}")
    print(f"CPU per message: sender {cpu / args.messages * 1e6:.0f} us (busy {cpu / elapsed:.0%} of the time), "
          f"Twilio double {report['cpu'] / args.messages * 1e6:.0f} us (its whole life, start-up included)")
    duplicates = report["accepted"] - report["distinct_to"]
    print(f"checks: the double accepted {report['accepted']} in {report['requests']} requests, "
          f"{report['distinct_to']} distinct recipients, {duplicates} duplicates; outbox rows {statuses}; "
          f"every accepted sid recorded: {set(report['sids']) <= ours}")
    if report["accepted"] != args.messages or duplicates or statuses.get("sent") != args.messages:
        raise SystemExit("delivery check failed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="rows per enqueue transaction")
    parser.add_argument("--concurrency", type=int, default=200, help="sends in flight to the API at once")
    parser.add_argument("--pin", action="store_true",
                        help="sender on CPU 0, the double on the others (helps on an otherwise idle machine)")
    parser.add_argument("--double", action="store_true", help=argparse.SUPPRESS)  # internal: run the double
    arguments = parser.parse_args()
    if arguments.double:
        asyncio.run(double_main())
    else:
        asyncio.run(main(arguments))
