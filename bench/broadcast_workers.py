"""A broadcast to 100,000 registrants on PostgreSQL, sent by 2 `beacon worker` processes (the Procfile's deployment).

How to run, from the repository root (a few minutes; ALL TABLES OF THE DATABASE ARE DROPPED)::

    .venv/bin/python bench/broadcast_workers.py --postgres postgresql://postgres@127.0.0.1:5432/bench_workers
    .venv/bin/python bench/broadcast_workers.py --postgres URL --registrants 20000 --workers 2

The database is created when missing. The Twilio double runs in its own process; one `beacon serve
--no-worker` and ``--workers`` `beacon worker` processes run against the database with rate limits off,
started once for the two runs that use them. Each worker sends from its own number (TWILIO_SMS_FROM), so the double
can count each worker's share. Runs, one after the other, in the same database:

* **drain, 1 process** (unless ``--no-single``) - broadcast_fanout's drain, before the Beacon processes
  start: the messages queued directly in the outbox and drained by a sender in the bench process alone;
* **drain, N workers** - the same number of messages queued directly in the outbox in one transaction
  (with the NOTIFY a web process sends), drained by the worker processes;
* **broadcast** - ``--registrants`` people seeded, POST /api/v1/broadcasts through the web process, until
  every recipient's message has been accepted by the double.

Printed: seconds and msg/s of each, the ratio broadcast/drain (N workers) against 85 %, whether under 60 s
(scaled to 100,000), and each worker's share of the sends. Worker logs are kept under ``--logs`` if given.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from beacon.wakeups import _NOTIFY, OUTBOX  # noqa: E402
from bench.broadcast_fanout import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    BROADCAST,
    count_sent,
    drain,
    queue_direct,
    reset_postgres,
    seed,
    serve_double,
)
from registry.crypto import MasterKeys  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.keys import KeyHolder, load_keyring  # noqa: E402
from tests.processes import Process, postgres_env  # noqa: E402
from tests.reliability.harness import free_port  # noqa: E402


def sms_from(worker: int) -> str:
    """The number worker ``worker`` sends from."""
    return f"+1500555{1000 + worker:04d}"


async def create_database(url: str) -> None:
    """Create the database of ``url`` when it does not exist (connecting to `postgres` on the same server)."""
    base, _, name = url.rpartition("/")
    name = name.split("?")[0]
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def wait_up(session: aiohttp.ClientSession, process: Process, url: str) -> None:
    """Until ``url`` answers anything (the web app's /healthz, a worker's metrics listener)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.proc is not None and process.proc.poll() is None, process.log_tail()
        try:
            async with session.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} did not come up: " + process.log_tail())


async def wait_sent(db: Database, count: int, broadcast: bool, processes: list[Process]) -> None:
    while await count_sent(db, broadcast=broadcast) < count:
        for process in processes:
            assert process.proc is not None and process.proc.poll() is None, process.log_tail()
        await asyncio.sleep(0.2)


async def senders(session: aiohttp.ClientSession, base_url: str) -> dict[str, int]:
    """Accepted messages per From number, so far."""
    url = f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/BenchSenders.json"
    auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    async with session.get(url, headers={"Authorization": auth}) as response:
        assert response.status == 200, await response.text()
        return {str(k): int(v) for k, v in (await response.json()).items()}


def shares(before: dict[str, int], after: dict[str, int], workers: int) -> str:
    sent = [after.get(sms_from(i), 0) - before.get(sms_from(i), 0) for i in range(workers)]
    total = sum(sent) or 1
    return ", ".join(f"worker{i} {n} ({n / total:.0%})" for i, n in enumerate(sent))


async def drain_workers(url: str, keys: str, count: int, processes: list[Process]) -> float:
    """Queue ``count`` messages in one transaction, announce them, and time the workers' drain."""
    db = Database(url)
    await db.migrate()
    master = MasterKeys.parse(keys)
    holder = KeyHolder(await load_keyring(db, master), master)
    async with db.write() as conn:
        for start in range(0, count, 5000):
            await queue_direct(conn, holder, start, min(start + 5000, count))
        await conn.execute(_NOTIFY, {"what": OUTBOX})  # as a web process announces what it queued
    started = time.perf_counter()  # the rows and the NOTIFY become visible at the commit
    await wait_sent(db, count, False, processes)
    elapsed = time.perf_counter() - started
    async with db.write() as conn:  # the broadcast then starts on an outbox as it would find it
        await conn.execute(text("DELETE FROM outbox WHERE broadcast_id IS NULL"))
    async with db.write() as conn:
        await conn.execute(text("ANALYZE"))
    await db.close()
    return elapsed


async def run(url: str, count: int, workers: int, single: bool, home: Path) -> None:
    keys = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    await create_database(url)
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    double = context.Process(target=serve_double, args=(ports,), daemon=True)
    double.start()
    base_url = ports.get(timeout=30)
    results: list[tuple[str, float, str]] = []
    if single:  # before the workers start, which would otherwise take part
        await reset_postgres(url)
        results.append(("drain, 1 process", await drain(url, keys, base_url, count),
                        "outbox -> double, a sender in the bench process alone"))
    await reset_postgres(url)
    secret = await seed(url, keys, count)  # migrated, people in, token made before any process starts
    env = postgres_env(url, keys, base_url, BEACON_RATE_LIMITS="off", BEACON_LOG_LEVEL="warning")
    web_port = free_port()
    processes = [Process(["serve", "--no-worker", "--port", str(web_port)], env, home, "web")]
    metrics = [free_port() for _ in range(workers)]
    processes += [Process(["worker"], {**env, "TWILIO_SMS_FROM": sms_from(i), "BEACON_METRICS_PORT": str(port)},
                          home, f"worker{i}") for i, port in enumerate(metrics)]
    try:
        for process in processes:
            process.start()
        async with aiohttp.ClientSession() as session:
            await wait_up(session, processes[0], f"http://127.0.0.1:{web_port}/healthz")
            for process, port in zip(processes[1:], metrics, strict=True):
                await wait_up(session, process, f"http://127.0.0.1:{port}/metrics")
            before = await senders(session, base_url)
            bare = await drain_workers(url, keys, count, processes)
            after = await senders(session, base_url)
            results.append((f"drain, {workers} workers", bare, shares(before, after, workers)))
            db = Database(url)
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{web_port}/api/v1/broadcasts", json=BROADCAST,
                                    headers={"Authorization": f"Bearer {secret}"}) as response:
                assert response.status == 201, await response.text()
            await wait_sent(db, count, True, processes)
            total = time.perf_counter() - started
            await db.close()
            final = await senders(session, base_url)
            results.append(("broadcast", total, "POST -> last accepted; " + shares(after, final, workers)))
    finally:
        for process in processes:
            process.stop()
        double.kill()
    print(f"messages: {count}, on PostgreSQL, 1 web process (serve --no-worker) + {workers} worker processes")
    for name, seconds, note in results:
        print(f"{name:<18} {seconds:7.1f} s  {count / seconds:8.0f} msg/s   ({note})")
    total = results[-1][1]
    print(f"ratio broadcast/drain ({workers} workers): {bare / total:.0%} (target >= 85%) -> "
          f"{'met' if bare / total >= 0.85 else 'NOT met'}; under 60 s for 100,000 -> "
          f"{'met' if total * 100_000 / count < 60 else 'NOT met'}{'' if count == 100_000 else ' (scaled)'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", required=True, help="a PostgreSQL URL (ALL ITS TABLES ARE DROPPED)")
    parser.add_argument("--registrants", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-single", action="store_true", help="skip the single-process drain")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    args = parser.parse_args(argv)
    os.environ.setdefault("BEACON_LOG_LEVEL", "warning")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.postgres, args.registrants, args.workers, not args.no_single, args.logs))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.postgres, args.registrants, args.workers, not args.no_single, Path(tmp)))


if __name__ == "__main__":
    main()
