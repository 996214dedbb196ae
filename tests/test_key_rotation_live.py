"""`beacon keys rotate` and `beacon keys reencrypt` on 50,000 profiles while `beacon serve` keeps answering.

A real SQLite database is filled with 50,000 registered people, sealed with the project's own functions
(the real encrypted format). The real console script serves it in a subprocess; while people keep
asking for their data (MYDATA through the simulator) and /healthz is polled, the data key is rotated
and everything re-encrypted by two more subprocesses. No request may fail and every answer must be
the asker's own data. Afterwards nothing is sealed under the old data key, every value opens, and
with the master key lost or wrong the service refuses to start in one clear line: the data is then
unreadable, never silently readable.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import signal
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from registry import keys
from registry.crypto import KeyRing, MasterKeys
from registry.db import Database
from tests.helpers import eventually
from tests.seeding import phone, seed_profiles
from tests.test_cli import BEACON, Result, assert_one_line_error, beacon, free_port, wait_healthy

PROFILES = 50_000
ASKERS = [1 + (k * 7919) % PROFILES for k in range(120)]  # people who ask for their data during the test
WORKERS = 3  # MYDATA senders at once, besides the /healthz poller


def first_name(n: int) -> str:
    return f"Amina{n:06d}"


def contact(n: int) -> str:
    return f"+23481{n:08d}"


def master_spec(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@dataclass
class Load:
    """What the clients saw: latencies of good answers, and every failure or wrong answer."""

    mydata: list[tuple[float, float]] = field(default_factory=list)  # (when it was answered, seconds taken)
    health: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def during(self, samples: list[tuple[float, float]], start: float, end: float) -> int:
        return sum(start <= at <= end for at, _ in samples)


def check_mydata(n: int, replies: list[str]) -> str | None:
    """None when the replies are n's own data, else what is wrong."""
    text = "\n".join(replies)
    if phone(n) not in text or first_name(n) not in text or contact(n) not in text:
        return f"MYDATA for {n} lacks their data: {text!r}"
    names = set(re.findall(r"Amina\d{6}", text))
    numbers = set(re.findall(r"\+\d{12,}", text))
    if names != {first_name(n)} or numbers != {phone(n), contact(n)}:
        return f"MYDATA for {n} shows someone else's data: {text!r}"
    return None


async def ask(session: aiohttp.ClientSession, base: str, n: int, load: Load) -> None:
    started = time.monotonic()
    try:
        async with session.post(f"{base}/simulator/messages", json={"from": phone(n), "text": "MYDATA"}) as response:
            body = await response.text()
            if response.status != 200:
                load.failures.append(f"MYDATA for {n}: HTTP {response.status} {body[:200]}")
                return
            wrong = check_mydata(n, json.loads(body)["replies"])
    except Exception as exc:  # noqa: BLE001 - every failure is counted, none may happen
        load.failures.append(f"MYDATA for {n}: {type(exc).__name__}: {exc}")
        return
    if wrong:
        load.failures.append(wrong)
    else:
        load.mydata.append((time.monotonic(), time.monotonic() - started))


async def keep_asking(base: str, stop: asyncio.Event, load: Load) -> None:
    async def sender(worker: int) -> None:
        k = worker
        while not stop.is_set():
            await ask(session, base, ASKERS[k % len(ASKERS)], load)
            k += WORKERS
            await asyncio.sleep(0.01)  # busy, not flat out: two cores are shared with the server and the CLI

    async def health() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(f"{base}/healthz") as response:
                    body = await response.json()
                    if response.status != 200 or body != {"status": "ok"}:
                        load.failures.append(f"/healthz: HTTP {response.status} {body}")
                    else:
                        load.health.append((time.monotonic(), time.monotonic() - started))
            except Exception as exc:  # noqa: BLE001
                load.failures.append(f"/healthz: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(sender(w) for w in range(WORKERS)), health())


@dataclass
class Server:
    process: asyncio.subprocess.Process
    base: str
    log: Path


async def serve(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(BEACON), "serve", "--port", str(port), env=env, cwd=env["BEACON_TEST_CWD"],
            stdout=out, stderr=out)
    return Server(process, f"http://127.0.0.1:{port}", log)


async def stop(server: Server) -> int:
    if server.process.returncode is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.process.wait(), 15)
        except TimeoutError:
            server.process.kill()
            await server.process.wait()
    assert server.process.returncode is not None
    return server.process.returncode


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Every server a test starts is stopped at the end, whatever happens."""
    started: list[Server] = []
    yield started
    for server in started:
        await stop(server)


def sqlite_path(env: dict[str, str]) -> str:
    return env["BEACON_DATABASE_URL"][len("sqlite:///"):]


@contextmanager
def connect(env: dict[str, str]) -> Iterator[sqlite3.Connection]:
    """A plain connection, committed and closed at the end (``with sqlite3.connect()`` only commits, and a
    connection left open in this process would lose its locks when the files are read below)."""
    conn = sqlite3.connect(sqlite_path(env))
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def key_ids_in_use(env: dict[str, str]) -> dict[str, set[str]]:
    """For every sealed column, the data keys its stored values name (byte 1 is the id's length)."""
    found: dict[str, set[str]] = {}
    with connect(env) as db:
        for sealed in keys.SEALED:
            ids: set[str] = set()
            for (blob,) in db.execute(f"SELECT {sealed.column} FROM {sealed.table} "  # noqa: S608 - fixed names
                                      f"WHERE {sealed.column} IS NOT NULL AND length({sealed.column}) > 0"):
                ids.add(bytes(blob[2:2 + blob[1]]).decode())
            found[f"{sealed.table}.{sealed.column}"] = ids
    return found


async def open_everything(env: dict[str, str]) -> tuple[KeyRing, dict[str, int]]:
    """Load the keys as a process would and open every sealed value; check the profiles are intact."""
    db = Database(env["BEACON_DATABASE_URL"])
    opened: dict[str, int] = {}
    try:
        ring = await keys.load_keyring(db, MasterKeys.parse(env["BEACON_KEYS"]))
        async with db.read() as conn:
            for sealed in keys.SEALED:
                table = sealed.table
                names = ", ".join((*sealed.key, *sealed.extra, sealed.column))
                rows = (await conn.exec_driver_sql(
                    f"SELECT {names} FROM {table} WHERE {sealed.column} IS NOT NULL")).all()  # noqa: S608
                count = 0
                for row in rows:
                    values = dict(row._mapping)
                    blob = values[sealed.column]
                    if not blob:
                        continue
                    plain = ring.decrypt(blob, sealed.aad(values))
                    if table == "profile_secrets":
                        n = int(values["registrant_id"])  # type: ignore[call-overload]
                        assert plain == {"first_name": first_name(n), "family_contact": contact(n)}[
                            str(values["field"])], (values, plain)
                    count += 1
                opened[f"{table}.{sealed.column}"] = count
            addresses = (await conn.exec_driver_sql("SELECT registrant_id, bidx, address_ct FROM identities")).all()
        for registrant_id, bidx, blob in addresses:
            assert ring.decrypt(blob, keys.identity_aad({"bidx": bidx})) == phone(registrant_id)
        return ring, opened
    finally:
        await db.close()


@pytest.mark.slow
async def test_rotate_and_reencrypt_50000_profiles_while_serving(
        tmp_path: Path, servers: list[Server]) -> None:
    began = time.monotonic()
    old_master = master_spec("m1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))}
    env.update({"BEACON_ENV": "development", "BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}",
                "BEACON_KEYS": old_master, "BEACON_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
                "BEACON_SIMULATOR": "on",
                "BEACON_TEST_CWD": str(tmp_path)})

    # -- 50,000 registered people, sealed as registration seals them --
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        await db.migrate()
        master = MasterKeys.parse(old_master)
        holder = keys.KeyHolder(await keys.load_keyring(db, master), master)
        old_key = holder.ring.active
        await seed_profiles(db, holder, [
            {"area_id": ("tripoli", "misrata", "benghazi")[n % 3], "nationality": "NG", "gender": "female",
             "age_band": "18-29", "household_size": 1 + n % 5, "first_name": first_name(n),
             "family_contact": contact(n)}
            for n in range(1, PROFILES + 1)], channel="simulator")
    finally:
        await db.close()
    seeded = time.monotonic()
    assert {ids for ids in map(frozenset, key_ids_in_use(env).values()) if ids} == {frozenset({old_key})}

    # -- serve it, and keep asking while the key is rotated and everything re-encrypted --
    server = await serve(env, tmp_path / "serve.log")
    servers.append(server)
    await wait_healthy(f"{server.base}/healthz", server.process)
    load = Load()
    halt = asyncio.Event()
    clients = asyncio.create_task(keep_asking(server.base, halt, load))
    try:
        await eventually(lambda: len(load.mydata) >= 20, 30, "answers under the old key")
        rotate_started = time.monotonic()
        rotated = await beacon(env, "keys", "rotate")
        rotate_ended = time.monotonic()
        assert rotated.code == 0, rotated
        found = re.search(r"data key (\w+) is now active", rotated.out)
        assert found and found.group(1) != old_key, rotated.out
        new_key = found.group(1)
        await eventually(lambda: load.during(load.mydata, rotate_started, time.monotonic()) >= 3, 30,
                         "answers while the service follows the rotation")
        reencrypt_started = time.monotonic()
        reencrypted = await beacon(env, "keys", "reencrypt", timeout=120)
        reencrypt_ended = time.monotonic()
        assert reencrypted.code == 0, reencrypted
        done = re.search(rf"re-encrypted (\d+) values under {new_key}; re-wrapped 0 data keys", reencrypted.out)
        assert done, reencrypted.out
        assert int(done.group(1)) >= 3 * PROFILES  # every address, first name and contact, and the messages
        answered = len(load.mydata)
        await eventually(lambda: len(load.mydata) >= answered + 20, 30, "answers after the re-encryption")
    finally:
        halt.set()
        await clients
    assert load.failures == [], f"{len(load.failures)} failed or wrong answers, first: {load.failures[:5]}"

    # The server kept answering all along, and quickly.
    assert load.during(load.mydata, rotate_started, reencrypt_started) >= 3
    assert load.during(load.mydata, reencrypt_started, reencrypt_ended) >= 20
    assert load.during(load.health, reencrypt_started, reencrypt_ended) >= 20
    mydata_times = sorted(t for _, t in load.mydata)
    health_times = sorted(t for _, t in load.health)
    slowest = max(mydata_times[-1], health_times[-1])
    assert slowest < 5.0, f"a request waited {slowest:.1f} s"
    summary = {
        "seed_s": round(seeded - began, 1), "rotate_s": round(rotate_ended - rotate_started, 1),
        "reencrypt_s": round(reencrypt_ended - reencrypt_started, 1), "values": int(done.group(1)),
        "mydata": len(mydata_times), "mydata_during_reencrypt": load.during(load.mydata, reencrypt_started,
                                                                            reencrypt_ended),
        "mydata_p50_ms": round(1000 * statistics.median(mydata_times)),
        "mydata_p99_ms": round(1000 * mydata_times[int(len(mydata_times) * 0.99)]),
        "mydata_max_ms": round(1000 * mydata_times[-1]), "healthz": len(health_times),
        "healthz_max_ms": round(1000 * health_times[-1]),
    }
    print("key rotation under load:", json.dumps(summary))

    # -- nothing is left under the old data key; everything opens; the server still answers --
    in_use = key_ids_in_use(env)
    assert all(ids <= {new_key} for ids in in_use.values()), in_use
    assert in_use["identities.address_ct"] == in_use["profile_secrets.value_ct"] == {new_key}
    assert in_use["inbound.body_ct"] == in_use["outbox.body_ct"] == {new_key}  # the messages of the load too
    ring, opened = await open_everything(env)
    assert ring.active == new_key and old_key in ring.key_ids  # the old key still exists, nothing needs it
    assert opened["identities.address_ct"] == PROFILES and opened["profile_secrets.value_ct"] == 2 * PROFILES
    again = Load()
    async with aiohttp.ClientSession() as session:
        for n in (1, PROFILES // 2, PROFILES, ASKERS[5]):
            await ask(session, server.base, n, again)
    assert again.failures == [] and len(again.mydata) == 4
    with connect(env) as conn:
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions.count("keys.rotated") == 1 and actions.count("keys.reencrypted") == 1
    assert await stop(server) == 0

    # Nothing personal is readable in the files, whatever key is lost.
    files = b"".join(p.read_bytes() for p in tmp_path.glob("beacon.db*"))
    for n in (1, 777, PROFILES):
        for needle in (phone(n), phone(n)[1:], first_name(n), contact(n)):
            assert needle.encode() not in files and needle.encode("utf-16-le") not in files, needle

    # -- the master key lost or wrong: the service refuses to start, in one clear line --
    unknown_master = {**env, "BEACON_KEYS": master_spec("m2")}
    wrong_material = {**env, "BEACON_KEYS": master_spec("m1")}  # the right id, other key material
    cases = ((unknown_master, "needs master key 'm1', which is not configured"),
             (wrong_material, "master key 'm1' does not open data key"))
    # One at a time: a second `beacon serve` on the same SQLite file is refused for that reason alone.
    answers = [await refused_to_serve(changed) for changed, _ in cases]
    answers += await asyncio.gather(*(beacon(changed, "export-subject", "--phone", phone(1)) for changed, _ in cases))
    for (_, words), refused, exported in zip(cases, answers[:2], answers[2:], strict=True):
        assert_one_line_error(refused, contains=words)
        assert_one_line_error(exported, contains=words)
        assert first_name(1) not in exported.out + exported.err and contact(1) not in exported.out
    with connect(env) as conn:
        assert conn.execute("SELECT count(*) FROM data_keys").fetchone() == (3,)  # nothing written by them

    # -- a new master key: data keys re-wrapped under it; then the old master alone opens nothing --
    new_master = master_spec("m3")
    both = {**env, "BEACON_KEYS": f"{new_master},{old_master}"}
    rewrapped = await beacon(both, "keys", "reencrypt", timeout=120)
    assert rewrapped.code == 0 and re.search(r"re-encrypted 0 values under \w+; re-wrapped 3 data keys",
                                             rewrapped.out), rewrapped
    old_only = {**env, "BEACON_KEYS": old_master}
    assert_one_line_error(await refused_to_serve(old_only),
                          contains="needs master key 'm3', which is not configured")
    new_only = {**env, "BEACON_KEYS": new_master}
    server = await serve(new_only, tmp_path / "serve-new-master.log")
    servers.append(server)
    await wait_healthy(f"{server.base}/healthz", server.process)
    final = Load()
    async with aiohttp.ClientSession() as session:
        for n in (2, PROFILES - 1):
            await ask(session, server.base, n, final)
    assert final.failures == [] and len(final.mydata) == 2

    # -- one value tampered with in the database: refused (an error), never garbage, nobody else's data --
    with connect(env) as conn:
        (blob,) = conn.execute("SELECT value_ct FROM profile_secrets WHERE registrant_id = 3 "
                               "AND field = 'first_name'").fetchone()
        conn.execute("UPDATE profile_secrets SET value_ct = ? WHERE registrant_id = 3 AND field = 'first_name'",
                     (blob[:-1] + bytes([blob[-1] ^ 1]),))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base}/simulator/messages",
                                json={"from": phone(3), "text": "MYDATA"}) as response:
            body = await response.text()
        assert response.status == 500, body
        assert first_name(3) not in body and phone(3) not in body and contact(3) not in body
        still = Load()
        await ask(session, server.base, 4, still)  # everyone else is unaffected
        assert still.failures == [] and len(still.mydata) == 1
    assert await stop(server) == 0
    assert "ciphertext does not authenticate" in server.log.read_text()
    with connect(env) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    print(f"key rotation test took {time.monotonic() - began:.1f} s")


async def refused_to_serve(env: dict[str, str]) -> Result:
    """Start `beacon serve` and expect it to exit by itself, having never answered."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(BEACON), "serve", "--port", str(port), env=env, cwd=env["BEACON_TEST_CWD"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
