"""A broadcast to 100,000 registrants: from POST /api/v1/broadcasts to the last message handed to Twilio.

How to run, from the repository root (a few minutes)::

    .venv/bin/python bench/broadcast_fanout.py
    .venv/bin/python bench/broadcast_fanout.py --registrants 20000

Registrants are written straight into a fresh SQLite file (sealed addresses and blind indexes, as
registration would leave them). The local Twilio double runs in its own process. Rate limits are
off. Two runs, one after the other, against the same double:

* **drain** - the same number of messages queued directly in the outbox, then drained by the
  sender alone: the bare outbox speed;
* **broadcast** - the real app (``create_app``): POST /api/v1/broadcasts, fan-out in batches,
  and the sender, until every recipient's message has been accepted by the provider.

Printed: seconds and messages per second of each, and the ratio broadcast/drain. Target: under
60 seconds for 100,000.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from beacon import config  # noqa: E402
from beacon.app import create_app  # noqa: E402
from beacon.context import BEACON  # noqa: E402
from campaigns import outbox  # noqa: E402
from campaigns.outbox import Draft  # noqa: E402
from campaigns.sender import Sender  # noqa: E402
from channels.twilio import TwilioChannel  # noqa: E402
from registry import audit, schema, tokens  # noqa: E402
from registry.crypto import MasterKeys  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.keys import KeyHolder, load_keyring  # noqa: E402
from tests.seeding import phone, seed_registrants  # noqa: E402

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
BROADCAST = {"text": {"en": "Flood warning: move to high ground.", "fr": "Alerte crue : montez en hauteur.",
                      "ar": "تحذير من فيضان: اصعدوا إلى مكان مرتفع."}, "audience": {"areas": ["tripoli"]},
             "check_in": True}


class SenderCounts:
    """GET .../Accounts/{account}/BenchSenders.json on the double: accepted messages per From number, so that
    processes given different TWILIO_SMS_FROM numbers can be told apart."""

    def __init__(self, double: Any) -> None:
        self.double = double

    def install(self, app: web.Application) -> None:
        app.router.add_get("/2010-04-01/Accounts/{account}/BenchSenders.json", self.counts)

    async def counts(self, request: web.Request) -> web.Response:
        return web.json_response(dict(Counter(m.from_ for m in self.double.messages)))


def serve_double(port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Run the Twilio double in this (child) process until killed."""
    from tests.doubles.twilio_api import TwilioDouble

    async def main() -> None:
        double = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
        double.extensions.append(SenderCounts(double))
        await double.start()
        port_queue.put(double.base_url)
        await asyncio.Event().wait()

    asyncio.run(main())


async def count_sent(db: Database, broadcast: bool) -> int:
    o = schema.outbox.c
    query = select(func.count()).where(o.status.in_(("sent", "delivered")))
    query = query.where(o.broadcast_id.is_not(None) if broadcast else o.broadcast_id.is_(None))
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def queue_direct(conn: AsyncConnection, holder: KeyHolder, start: int, stop: int) -> None:
    """Queue messages to the numbers ``start`` to ``stop`` (excluded) straight into the outbox."""
    drafts = [Draft(None, None, "sms", phone(n), "Flood warning: move to high ground.") for n in range(start, stop)]
    await outbox.enqueue(conn, holder.ring, drafts)


async def drain(db_url: str, keys: str, base_url: str, count: int) -> float:
    """Queue ``count`` messages straight into the outbox and time the sender alone."""
    db = Database(db_url)
    await db.migrate()
    holder = KeyHolder(await load_keyring(db, MasterKeys.parse(keys)), MasterKeys.parse(keys))
    settings = config.load({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                            "TWILIO_SMS_FROM": "+15005550006", "TWILIO_API_BASE_URL": base_url})
    assert settings.twilio is not None
    channel = TwilioChannel(settings.twilio, "https://beacon.example.org", rate_limits=False)
    await channel.start()
    for start in range(0, count, 5000):
        async with db.write() as conn:
            await queue_direct(conn, holder, start, min(start + 5000, count))
    sender = Sender(db, holder, {"sms": channel})
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(sender.run(stop))
    while await count_sent(db, broadcast=False) < count:
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    stop.set()
    sender.wake()
    await task
    await channel.close()
    await db.close()
    return elapsed


async def seed(db_url: str, keys: str, count: int) -> str:
    """Migrate, seed ``count`` registrants in Tripoli and return a new responder API token."""
    db = Database(db_url)
    await db.migrate()
    master = MasterKeys.parse(keys)
    holder = KeyHolder(await load_keyring(db, master), master)
    await seed_registrants(db, holder, count)
    audit.use(master)  # the token's creation is audited, as `beacon token create` does
    secret = await tokens.create(db, "responder", "bench")
    await db.close()
    return secret


async def broadcast(db_url: str, keys: str, base_url: str, count: int, home: Path) -> tuple[float, float]:
    """Seed ``count`` registrants, POST a broadcast and time it to the last accepted message."""
    secret = await seed(db_url, keys, count)
    settings = config.load({
        "BEACON_DATABASE_URL": db_url, "BEACON_KEYS": keys, "BEACON_RATE_LIMITS": "off",
        "BEACON_LOG_LEVEL": "warning", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": "+15005550006", "TWILIO_API_BASE_URL": base_url,
        "BEACON_KEYS_FILE": str(home / "keys.json"),
    })
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    app_db = client.app[BEACON].db  # type: ignore[index]
    started = time.perf_counter()
    response = await client.post("/api/v1/broadcasts", json=BROADCAST, headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 201, await response.text()
    queued_at = None
    while True:
        sent = await count_sent(app_db, broadcast=True)
        if queued_at is None:
            async with app_db.read() as conn:
                rows = (await conn.execute(select(func.count()).select_from(schema.recipients))).scalar_one()
            if rows >= count:
                queued_at = time.perf_counter() - started
        if sent >= count:
            break
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, queued_at or elapsed


async def reset_postgres(url: str) -> None:
    """Empty the PostgreSQL database given with --postgres (a bench database: every table goes)."""
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.close()


async def main(count: int, postgres: str | None) -> None:
    keys = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    ports: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    double = multiprocessing.get_context("spawn").Process(target=serve_double, args=(ports,), daemon=True)
    double.start()
    base_url = ports.get(timeout=30)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if postgres:  # both runs in the same database, emptied before each
                await reset_postgres(postgres)
                bare = await drain(postgres, keys, base_url, count)
                await reset_postgres(postgres)
                total, fanned = await broadcast(postgres, keys, base_url, count, home)
            else:
                bare = await drain(f"sqlite:///{home / 'drain.db'}", keys, base_url, count)
                total, fanned = await broadcast(f"sqlite:///{home / 'broadcast.db'}", keys, base_url, count, home)
    finally:
        double.kill()
    print(f"messages: {count}, on {'PostgreSQL' if postgres else 'SQLite'}")
    print(f"drain      {bare:7.1f} s  {count / bare:8.0f} msg/s   (outbox -> Twilio double, sender alone)")
    print(f"broadcast  {total:7.1f} s  {count / total:8.0f} msg/s   (POST -> last message accepted; "
          f"fan-out done after {fanned:.1f} s)")
    print(f"ratio broadcast/drain: {bare / total:.0%} (target >= 85%) -> {'met' if bare / total >= 0.85 else 'NOT met'}"
          f"; under 60 s for 100,000 -> {'met' if total * 100_000 / count < 60 else 'NOT met'} (scaled)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrants", type=int, default=100_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on instead of SQLite (ALL ITS TABLES ARE DROPPED)")
    args = parser.parse_args()
    os.environ.setdefault("BEACON_LOG_LEVEL", "warning")
    asyncio.run(main(args.registrants, args.postgres))
