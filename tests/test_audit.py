"""The audit log is tamper-evident to its end: a keyed chain, checkpoints, and logs from before keying."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from registry import audit, schema, tokens
from registry.crypto import MasterKeys
from registry.db import MIGRATIONS, Database
from tests.conftest import StartBeacon
from tests.test_cli import Result, assert_one_line_error, beacon, database

CHECKPOINT = re.compile(r"^seq=(\d+) hash=([0-9a-f]{64})$")
Point = tuple[str, str]


def master_spec(key_id: str) -> str:
    return f"{key_id}:" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A development environment for the console script, on a fresh SQLite file; this test process
    keys its own entries with the same master keys, as another Beacon process would."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))}
    base.update({"BEACON_ENV": "development", "BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}",
                 "BEACON_KEYS": master_spec("m1"), "BEACON_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
                 "BEACON_TEST_CWD": str(tmp_path)})
    audit.use(MasterKeys.parse(base["BEACON_KEYS"]))
    return base


async def audited(env: dict[str, str], *names: str, checkpoint: bool = False) -> Point | None:
    """One audit entry per name (what `beacon token create` writes), then a checkpoint if asked."""
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        await db.migrate()
        for name in names:
            await tokens.create(db, "auditor", name)
        if not checkpoint:
            return None
        async with db.write() as conn:
            head = await audit.checkpoint(conn, "test")
        return str(head.seq), head.hash
    finally:
        await db.close()


async def verify(env: dict[str, str], point: Point | None = None) -> Result:
    expect = ("--expect-seq", point[0], "--expect-hash", point[1]) if point else ()
    return await beacon(env, "audit", "verify", *expect)


def assert_broken(result: Result, *, at: int, says: str) -> None:
    """Exit 1 and one line naming the entry and the reason."""
    assert result.code == 1, result
    lines = result.out.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result
    assert re.search(rf"\bentry {at}\b", lines[0]) and says in lines[0], lines[0]


def plain_hash(row: sqlite3.Row | tuple[object, ...], prev: str) -> str:
    """What anyone can compute without the key: SHA-256 over an entry's fields (seq, at, actor, action,
    subject, detail) and the previous hash, as the chain was hashed before it was keyed."""
    seq, at, actor, action, subject, detail = row
    stamp = datetime.fromisoformat(str(at))
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    material = json.dumps([seq, stamp.isoformat(), actor, action, subject, detail, prev], ensure_ascii=False,
                          separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def rechain_plainly(env: dict[str, str], start: int, *, unkey: bool, marker: int | None = None) -> None:
    """An attacker with the database but not the master keys: recompute every hash from ``start`` on."""
    with database(env) as db:
        prev = db.execute("SELECT hash FROM audit_log WHERE seq = ?", (start - 1,)).fetchone()
        prev_hash = prev[0] if prev else audit.GENESIS
        rows = db.execute("SELECT seq, at, actor, action, subject, detail FROM audit_log WHERE seq >= ? "
                          "ORDER BY seq", (start,)).fetchall()
        for row in rows:
            digest = plain_hash(row, prev_hash)
            db.execute("UPDATE audit_log SET prev_hash = ?, hash = ?" + (", key_id = NULL" if unkey else "")
                       + " WHERE seq = ?", (prev_hash, digest, row[0]))
            prev_hash = digest
        if marker is not None:
            db.execute("UPDATE audit_chain SET keyed_from = ?", (marker,))


# --------------------------------------------------------------------------- checkpoints


async def test_removing_the_newest_entries_shows_against_a_checkpoint(env: dict[str, str]) -> None:
    await audited(env, "a", "b", "c")
    made = await beacon(env, "audit", "checkpoint")
    assert made.code == 0 and len(made.out.splitlines()) == 1, made
    found = CHECKPOINT.match(made.out.strip())
    assert found, made.out
    point = seq, digest = found.group(1), found.group(2)
    assert seq == "4"  # the checkpoint is itself an entry, the newest
    with database(env) as db:
        assert db.execute("SELECT action, hash FROM audit_log WHERE seq = 4").fetchone() == ("audit.checkpoint",
                                                                                              digest)
    logged = [json.loads(line) for line in made.err.splitlines() if line.startswith("{")]
    assert [(e["seq"], e["hash"]) for e in logged if e["event"] == "audit.checkpoint"] == [(4, digest)]

    await audited(env, "d")
    intact = await verify(env, point)
    assert intact.code == 0 and "5 entries" in intact.out and "matches the checkpoint" in intact.out, intact
    assert_broken(await verify(env, (seq, "f" * 64)), at=4, says="differs from the checkpoint")

    with database(env) as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 3")
    assert (await verify(env)).code == 0  # what is left is a whole chain: only the checkpoint tells
    assert_broken(await verify(env, point), at=3, says="newer entries were removed")


async def test_verify_takes_a_whole_checkpoint_or_none(env: dict[str, str]) -> None:
    half, bad = await asyncio.gather(beacon(env, "audit", "verify", "--expect-seq", "1"),
                                     beacon(env, "audit", "verify", "--expect-seq", "1", "--expect-hash", "abc"))
    assert_one_line_error(half, contains="--expect-hash")
    assert_one_line_error(bad, contains="64 hex digits")


# --------------------------------------------------------------------------- the key


async def test_a_rewrite_with_a_recomputed_plain_chain_fails(env: dict[str, str]) -> None:
    point = await audited(env, "a", "b", "c", "d", checkpoint=True)
    assert point is not None
    seq = point[0]
    with database(env) as db:
        db.execute("""UPDATE audit_log SET detail = '{"role":"admin"}' WHERE seq = 2""")
    rechain_plainly(env, 2, unkey=False)
    assert_broken(await verify(env), at=2, says="altered")

    # The same, written as entries from before keying: keyed entries began before them.
    rechain_plainly(env, 2, unkey=True)
    assert_broken(await verify(env), at=2, says="not keyed")

    # The whole log as if never keyed, marker included: the checkpoint still tells.
    rechain_plainly(env, 1, unkey=True, marker=int(seq) + 1)
    assert_broken(await verify(env, point), at=int(seq), says="differs from the checkpoint")


async def test_the_chain_survives_data_key_rotation(env: dict[str, str]) -> None:
    point = await audited(env, "a", "b", checkpoint=True)
    for step in (("keys", "rotate"), ("keys", "reencrypt")):
        done = await beacon(env, *step)
        assert done.code == 0, done
    await audited(env, "c")
    intact = await verify(env, point)
    assert intact.code == 0 and "6 entries" in intact.out, intact


async def test_a_new_master_key_keys_new_entries_and_the_old_one_verifies_older_ones(env: dict[str, str]) -> None:
    point = await audited(env, "a", checkpoint=True)
    rotated = {**env, "BEACON_KEYS": f"{master_spec('m2')},{env['BEACON_KEYS']}"}
    assert (await beacon(rotated, "keys", "reencrypt")).code == 0
    audit.use(MasterKeys.parse(rotated["BEACON_KEYS"]))
    await audited(rotated, "b")
    with database(env) as db:
        assert [k for (k,) in db.execute("SELECT key_id FROM audit_log ORDER BY seq")] == ["m1", "m1", "m2", "m2"]
    assert (await verify(rotated, point)).code == 0

    # Without the master key that keyed them, older entries cannot be checked: said, not passed.
    retired = {**env, "BEACON_KEYS": rotated["BEACON_KEYS"].split(",")[0]}
    assert_broken(await verify(retired), at=1, says="master key 'm1'")
    # Master keys that never keyed this log check nothing.
    assert_broken(await verify({**env, "BEACON_KEYS": master_spec("m1")}), at=1, says="altered")


# --------------------------------------------------------------------------- before keying


def upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def legacy_log(url: str, length: int) -> None:
    """A database before the keyed chain (revision 0006) whose audit log the unkeyed code wrote (SHA-256)."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade_to, "0006")
            prev = audit.GENESIS
            start = datetime.now(UTC) - timedelta(days=1)
            for seq in range(1, length + 1):
                at = start + timedelta(minutes=seq)
                row = (seq, at.isoformat(), "cli", "token.created", f"t{seq}", '{"role":"auditor"}')
                digest = plain_hash(row, prev)
                await conn.execute(insert(schema.audit_log).values(
                    seq=seq, at=at, actor="cli", action="token.created", subject=f"t{seq}",
                    detail='{"role":"auditor"}', prev_hash=prev, hash=digest))
                prev = digest
    finally:
        await db.close()


async def test_entries_from_before_keying_still_verify(env: dict[str, str]) -> None:
    await legacy_log(env["BEACON_DATABASE_URL"], 3)
    intact = await verify(env)  # migrates first, as every command does
    assert intact.code == 0 and "3 entries" in intact.out, intact
    point = await audited(env, "a", checkpoint=True)
    with database(env) as db:
        assert [k for (k,) in db.execute("SELECT key_id FROM audit_log ORDER BY seq")] == [None] * 3 + ["m1"] * 2
        assert db.execute("SELECT keyed_from FROM audit_chain").fetchall() == [(4,)]
    assert (await verify(env, point)).code == 0

    with database(env) as db:  # an entry from before keying is still covered
        db.execute("UPDATE audit_log SET subject = 't9' WHERE seq = 2")
    assert_broken(await verify(env), at=2, says="altered")
    with database(env) as db:
        db.execute("UPDATE audit_log SET subject = 't2' WHERE seq = 2")
    rechain_plainly(env, 4, unkey=True)  # a keyed entry passed off as one from before keying
    assert_broken(await verify(env), at=4, says="not keyed")


async def test_migrating_a_legacy_log_keeps_it_whole(database_url: str) -> None:
    await legacy_log(database_url, 2)
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.write() as conn:
            await audit.append(conn, "system", "test.entry")
        async with db.read() as conn:
            verdict = await audit.verify(conn)
            keyed_from = (await conn.execute(select(schema.audit_chain.c.keyed_from))).scalars().all()
            kinds = (await conn.execute(text("SELECT key_id IS NULL FROM audit_log ORDER BY seq"))).scalars().all()
    finally:
        await db.close()
    assert verdict == audit.Verdict(True, 3)
    assert keyed_from == [3] and [bool(k) for k in kinds] == [True, True, False]


# --------------------------------------------------------------------------- the API


async def test_auditors_read_the_head_and_it_verifies(start_beacon: StartBeacon) -> None:
    running = await start_beacon()
    db = running.beacon.db
    auditor = {"Authorization": f"Bearer {await tokens.create(db, 'auditor', 'aud')}"}
    admin = {"Authorization": f"Bearer {await tokens.create(db, 'admin', 'adm')}"}
    responder = {"Authorization": f"Bearer {await tokens.create(db, 'responder', 'resp')}"}

    response = await running.client.get("/api/v1/audit/head", headers=auditor)
    assert response.status == 200
    head = await response.json()
    async with db.read() as conn:
        newest = (await conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq.desc()))).first()
    assert newest is not None and head == {"seq": newest.seq, "hash": newest.hash}
    assert (await (await running.client.get("/api/v1/audit/head", headers=admin)).json()) == head
    assert (await running.client.get("/api/v1/audit/head", headers=responder)).status == 403
    assert (await running.client.get("/api/v1/audit/head")).status == 401

    async with db.read() as conn:
        assert (await audit.verify(conn, audit.Checkpoint(head["seq"], head["hash"]))).ok
    async with db.write() as conn:
        await conn.execute(schema.audit_log.delete().where(schema.audit_log.c.seq == head["seq"]))
    async with db.read() as conn:
        truncated = await audit.verify(conn, audit.Checkpoint(head["seq"], head["hash"]))
    assert (truncated.ok, truncated.broken_at) == (False, head["seq"])

    document = await (await running.client.get("/api/v1/openapi.json")).json()
    assert "200" in document["paths"]["/api/v1/audit/head"]["get"]["responses"]


def test_every_process_with_the_same_master_keys_derives_the_same_chain_key() -> None:
    master = MasterKeys.parse(master_spec("m1"))
    keys = audit.ChainKeys.of(master)
    assert keys.active == "m1" and keys.keys == audit.ChainKeys.of(master).keys
    assert keys.keys["m1"] not in master.keys.values() and len(keys.keys["m1"]) == 32
