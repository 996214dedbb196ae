"""Resident memory of ``beacon serve`` with 1,000,000 registrants while a 100,000-recipient broadcast runs.

How to run, from the repository root (several minutes: most of it sealing the registrants)::

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --registrants 200000 --broadcast 50000

Registrants are written straight into a fresh SQLite file (sealed addresses and blind indexes, as
registration would leave them); the first ``--broadcast`` of them live in Tripoli, the rest in
Benghazi. Then ``beacon serve`` starts in a process of its own (the Twilio double in another), a
responder POSTs a broadcast to Tripoli, and this process samples the server's RSS
(``/proc/PID/status``) every 0.2 s until every message has been accepted by the double.

Printed: RSS once started and idle (the baseline, same run), the peak while the broadcast fans out
and sends, the growth, and the target: peak under 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from registry import audit, schema, tokens  # noqa: E402
from registry.crypto import MasterKeys  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.keys import KeyHolder, identity_aad, load_keyring  # noqa: E402
from registry.store import identity_kind  # noqa: E402

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
TARGET_MB = 150.0


async def seed(url: str, keys: str, count: int, audience: int) -> str:
    """``count`` consenting registrants reachable by SMS, the first ``audience`` in Tripoli; a responder token."""
    db = Database(url)
    await db.migrate()
    master = MasterKeys.parse(keys)
    ring = KeyHolder(await load_keyring(db, master), master).ring
    now = datetime.now(UTC)
    kind = identity_kind("sms")
    for start in range(0, count, 10_000):
        ids = range(start + 1, min(start + 10_000, count) + 1)
        people = [{"id": n, "language": ("en", "fr", "ar")[n % 3], "area_id": "tripoli" if n <= audience else
                   "benghazi", "step": "idle", "context": {}, "consented": True, "opted_out": False,
                   "created_at": now, "confirmed_at": now, "last_seen_at": now, "share_family": False} for n in ids]
        identities = []
        for n in ids:
            address = f"+2348{n:09d}"
            bidx = ring.blind_index(kind, address)
            identities.append({"registrant_id": n, "kind": kind, "bidx": bidx, "address_ct": ring.encrypt(
                address, identity_aad({"bidx": bidx})), "last_channel": "sms", "preferred_channel": "sms",
                "reachable": True, "created_at": now, "last_used_at": now})
        async with db.write() as conn:
            await conn.execute(schema.registrants.insert(), people)
            await conn.execute(schema.identities.insert(), identities)
    audit.use(master)
    token = await tokens.create(db, "responder", "memory-bench")
    await db.close()
    return token


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, token: str | None = None, body: object = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


def main(args: argparse.Namespace) -> None:
    keys = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        db_path = home / "beacon.db"
        started = time.perf_counter()
        token = asyncio.run(seed(f"sqlite:///{db_path}", keys, args.registrants, args.broadcast))
        print(f"seeded {args.registrants:,} registrants ({args.broadcast:,} in the audience) "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        twilio_file = home / "twilio-url"
        double = subprocess.Popen([sys.executable, str(ROOT / "bench" / "webhook_throughput.py"),
                                   "--twilio-double", str(twilio_file)], cwd=ROOT)
        server = None
        try:
            while not twilio_file.exists() or not twilio_file.read_text():
                time.sleep(0.1)
            port = free_port()
            env = {**os.environ, "BEACON_ENV": "production", "BEACON_METRICS": "off",
                   "BEACON_DATABASE_URL": f"sqlite:///{db_path}", "BEACON_HOST": "127.0.0.1",
                   "BEACON_PORT": str(port), "BEACON_KEYS": keys, "BEACON_KEYS_FILE": str(home / "keys.json"),
                   "BEACON_PUBLIC_URL": "https://beacon.example.org", "BEACON_LOG_LEVEL": "warning",
                   "BEACON_RATE_LIMITS": "off", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                   "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": "+15005550006",
                   "TWILIO_API_BASE_URL": twilio_file.read_text()}
            server = subprocess.Popen([str(Path(sys.executable).parent / "beacon"), "serve"], env=env, cwd=ROOT)
            base = f"http://127.0.0.1:{port}"
            while request(base + "/healthz")[0] != 200:
                if server.poll() is not None:
                    raise SystemExit("beacon serve exited")
                time.sleep(0.2)
            time.sleep(2.0)  # started and idle
            idle = rss_mb(server.pid)
            status, answer = request(base + "/api/v1/broadcasts", token, {
                "text": {"en": "Flood warning: move to high ground.", "fr": "Alerte crue : montez en hauteur.",
                         "ar": "تحذير من فيضان: اصعدوا إلى مكان مرتفع."},
                "audience": {"areas": ["tripoli"]}, "check_in": True})
            assert status == 201, answer
            began = time.perf_counter()
            peak, sent, checked = idle, 0, 0.0
            while sent < args.broadcast:
                peak = max(peak, rss_mb(server.pid))
                if time.perf_counter() - checked > 2.0:
                    with sqlite3.connect(db_path) as conn:
                        sent = conn.execute("SELECT count(*) FROM outbox WHERE broadcast_id IS NOT NULL AND "
                                            "status IN ('sent', 'delivered')").fetchone()[0]
                    checked = time.perf_counter()
                time.sleep(0.2)
            seconds = time.perf_counter() - began
        finally:
            for process in (server, double):
                if process is not None:
                    process.send_signal(signal.SIGINT)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
    print(f"broadcast of {args.broadcast:,} sent in {seconds:.0f} s")
    print(f"beacon serve RSS: idle {idle:.0f} MB (baseline, same run), peak during the broadcast {peak:.0f} MB, "
          f"growth {peak - idle:.0f} MB")
    print(f"target: peak under {TARGET_MB:.0f} MB -> {'met' if peak < TARGET_MB else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrants", type=int, default=1_000_000)
    parser.add_argument("--broadcast", type=int, default=100_000, help="recipients of the broadcast")
    main(parser.parse_args())
