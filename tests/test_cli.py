"""The `beacon` console script, run as a real subprocess against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import secrets
import signal
import socket
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import structlog

from channels.base import Inbound
from registry import audit, keys, store, tokens
from registry.crypto import MasterKeys
from registry.db import Database
from tests.conftest import dev_keys
from tests.helpers import eventually

BEACON = Path(sys.executable).parent / "beacon"  # the console script installed next to this interpreter
TOKEN = re.compile(r"^bcn_[A-Za-z0-9_-]{20,}$")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean development environment: nothing inherited that Beacon reads, a fresh SQLite file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))}
    base.update({
        "BEACON_ENV": "development",
        "BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}",
        "BEACON_KEYS": dev_keys(),
        "BEACON_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "BEACON_TEST_CWD": str(tmp_path),  # not read by Beacon: where the commands run (./data would go here)
    })
    audit.use(MasterKeys.parse(base["BEACON_KEYS"]))  # entries written here are keyed as the commands key theirs
    return base


async def beacon(env: dict[str, str], *args: str, timeout: float = 30) -> Result:
    assert BEACON.exists(), f"no console script at {BEACON}: install the project (pip install -e .)"
    process = await asyncio.create_subprocess_exec(
        str(BEACON), *args, env=env, cwd=env["BEACON_TEST_CWD"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def assert_one_line_error(result: Result, *, contains: str = "") -> str:
    """Non-zero exit, and stderr is exactly one line that says what is wrong: no traceback."""
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.err}"
    assert lines[0].startswith("beacon") and "error" in lines[0], lines[0]
    assert contains.lower() in lines[0].lower(), lines[0]
    return lines[0]


def database(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(env["BEACON_DATABASE_URL"][len("sqlite:///"):])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- commands


@pytest.mark.slow
async def test_migrate_and_tokens(env: dict[str, str]) -> None:
    result = await beacon(env, "migrate")
    assert result.code == 0 and "up to date" in result.out, result
    created = await beacon(env, "token", "create", "--role", "responder", "--name", "x")
    assert created.code == 0, created
    token = created.out.rstrip("\n").splitlines()[-1]
    assert TOKEN.match(token), created.out
    with database(env) as db:
        rows = db.execute("SELECT name, role, token_hash, revoked_at FROM api_tokens").fetchall()
    assert rows == [("x", "responder", hashlib.sha256(token.encode()).hexdigest(), None)]

    again, bad_role, unbound, no_such = await asyncio.gather(
        beacon(env, "token", "create", "--role", "admin", "--name", "x"),
        beacon(env, "token", "create", "--role", "king", "--name", "y"),
        beacon(env, "token", "create", "--role", "partner", "--name", "p"),
        beacon(env, "token", "create", "--role", "partner", "--name", "q", "--arrangement", "5"))
    assert_one_line_error(again, contains="already exists")
    assert token not in again.out + again.err
    assert_one_line_error(bad_role, contains="king")
    assert_one_line_error(unbound, contains="--arrangement")  # a partner token is always bound to one
    assert_one_line_error(no_such, contains="no arrangement 5")

    revoked = await beacon(env, "token", "revoke", "x")
    assert revoked.code == 0, revoked
    with database(env) as db:
        assert db.execute("SELECT revoked_at FROM api_tokens WHERE name = 'x'").fetchone()[0] is not None
    assert_one_line_error(await beacon(env, "token", "revoke", "nobody"), contains="nobody")


async def seed(env: dict[str, str]) -> None:
    """Somebody wrote in (as the running service would store it), so there is data to re-encrypt."""
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        await db.migrate()
        ring = await keys.load_keyring(db, MasterKeys.parse(env["BEACON_KEYS"]))
        async with db.write() as conn:
            message = Inbound(channel="sms", address="+2348012345678", text="JOIN", provider_id="SM1",
                              received_at=datetime.now(UTC))
            await store.store_inbound(conn, ring, [("twilio", message)])
    finally:
        await db.close()


def key_ids(env: dict[str, str]) -> set[str]:
    """The data key each stored ciphertext names (byte 1 is the id's length, the id follows)."""
    with database(env) as db:
        blobs = [b for (b,) in db.execute("SELECT address_ct FROM identities UNION ALL SELECT body_ct FROM inbound")]
    return {bytes(b[2:2 + b[1]]).decode() for b in blobs if b}


@pytest.mark.slow
async def test_keys_rotate_and_reencrypt(env: dict[str, str]) -> None:
    await seed(env)
    (old,) = key_ids(env)
    rotated = await beacon(env, "keys", "rotate")
    assert rotated.code == 0, rotated
    new = re.search(r"data key (\w+) is now active", rotated.out)
    assert new and new.group(1) != old, rotated.out
    with database(env) as db:
        active = db.execute("SELECT id FROM data_keys WHERE purpose = 'data' AND active").fetchall()
    assert active == [(new.group(1),)]
    assert key_ids(env) == {old}  # rotation alone re-seals nothing

    reencrypted = await beacon(env, "keys", "reencrypt")
    assert reencrypted.code == 0, reencrypted
    assert re.search(rf"re-encrypted 2 values under {new.group(1)}", reencrypted.out), reencrypted.out
    assert key_ids(env) == {new.group(1)}

    # Everything still opens with the configured keys.
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        ring = await keys.load_keyring(db, MasterKeys.parse(env["BEACON_KEYS"]))
        async with db.read() as conn:
            state = await store.load_state(conn, ring, 1)
        assert state is not None and state.addresses == (("sms", "+2348012345678"),)
    finally:
        await db.close()

    # Other master keys: refused in one line, nothing written.
    wrong = {**env, "BEACON_KEYS": dev_keys()}
    assert_one_line_error(await beacon(wrong, "keys", "reencrypt"), contains="master key")
    with database(env) as db:
        assert db.execute("SELECT count(*) FROM data_keys").fetchone() == (3,)


@pytest.mark.slow
async def test_audit_verify(env: dict[str, str]) -> None:
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        await db.migrate()
        for name in ("a", "b", "c"):  # three audited actions (what `beacon token create` does)
            await tokens.create(db, "auditor", name)
    finally:
        await db.close()
    intact = await beacon(env, "audit", "verify")
    assert intact.code == 0, intact
    assert "3 entries" in intact.out

    with database(env) as db:
        db.execute("UPDATE audit_log SET detail = '{\"role\":\"admin\"}' WHERE seq = 2")
    broken = await beacon(env, "audit", "verify")
    assert broken.code == 1, broken
    assert re.search(r"\bentry 2\b", broken.out + broken.err), broken
    assert "Traceback" not in broken.err

    with database(env) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 2")
    missing = await beacon(env, "audit", "verify")
    assert missing.code == 1 and re.search(r"\bentry 2\b", missing.out + missing.err), missing


# --------------------------------------------------------------------------- bad configuration

COMMANDS = (
    ("migrate",),
    ("token", "create", "--role", "admin", "--name", "x"),
    ("token", "revoke", "x"),
    ("keys", "rotate"),
    ("keys", "reencrypt"),
    ("audit", "verify"),
    ("audit", "checkpoint"),
    ("retention", "run"),
    ("serve", "--port", "0"),
    ("worker",),
)


def bad_configurations(tmp_path: Path) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (environment changes, a word the error must contain)."""
    garbage = tmp_path / "areas.json"
    garbage.write_bytes(b"\xff\xfe not json")
    closed = free_port()  # bound and released: nothing listens there
    short = base64.b64encode(secrets.token_bytes(16)).decode()
    return {
        "production without keys": ({"BEACON_ENV": "production", "BEACON_KEYS": "",
                                     "BEACON_PUBLIC_URL": "https://beacon.example.org"}, "BEACON_KEYS"),
        "malformed keys": ({"BEACON_KEYS": "k1:not-base64!"}, "BEACON_KEYS"),
        "short key": ({"BEACON_KEYS": f"k1:{short}"}, "32 bytes"),
        "min cell 2": ({"BEACON_MIN_CELL": "2"}, "BEACON_MIN_CELL"),
        "missing areas file": ({"BEACON_AREAS_FILE": str(tmp_path / "nowhere.json")}, "BEACON_AREAS_FILE"),
        "areas file is a directory": ({"BEACON_AREAS_FILE": str(tmp_path)}, "BEACON_AREAS_FILE"),
        "unreadable areas file": ({"BEACON_AREAS_FILE": str(garbage)}, "areas"),
        "port abc": ({"BEACON_PORT": "abc"}, "BEACON_PORT"),
        "closed postgres port": ({"BEACON_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/beacon"}, ""),
    }


@pytest.mark.slow
async def test_the_console_script_fails_in_one_line_on_bad_config(env: dict[str, str], tmp_path: Path) -> None:
    """The real script, for each bad setting (every command is in the next test)."""
    slots = asyncio.Semaphore(4)

    async def attempt(name: str, command: tuple[str, ...]) -> tuple[str, tuple[str, ...], Result]:
        async with slots:
            return name, command, await beacon({**env, **cases[name][0]}, *command)

    cases = bad_configurations(tmp_path)
    runs = [("production without keys", ("migrate",)), ("malformed keys", ("keys", "rotate")),
            ("unreadable areas file", ("worker",)), ("port abc", ("serve", "--port", "0")),
            ("closed postgres port", ("serve", "--port", "0"))]
    for name, command, result in await asyncio.gather(*(attempt(name, command) for name, command in runs)):
        try:
            assert_one_line_error(result, contains=cases[name][1])
        except AssertionError as failure:
            raise AssertionError(f"{name}: beacon {' '.join(command)}: {failure}") from None
    # Nothing was created by the refused commands: no database, no development key file.
    assert not (tmp_path / "beacon.db").exists()
    assert not (tmp_path / "keys.json").exists()
    assert not (tmp_path / "data").exists()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)


def test_every_command_fails_in_one_line_on_bad_config(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        restore_logging: None) -> None:
    """Every command x every bad setting, through the script's entry point in this process (a subprocess each
    would take a minute); the test above shows the installed script behaves the same."""
    from beacon import cli

    monkeypatch.chdir(tmp_path)
    for name, (changes, word) in bad_configurations(tmp_path).items():
        for command in COMMANDS:
            for key in [k for k in os.environ if k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))]:
                monkeypatch.delenv(key)
            for key, value in {**env, **changes}.items():
                monkeypatch.setenv(key, value)
            with pytest.raises(SystemExit) as exited:
                cli.main(list(command))
            out, err = capsys.readouterr()
            try:
                assert_one_line_error(Result(int(exited.value.code or 0), out, err), contains=word)
            except AssertionError as failure:
                raise AssertionError(f"{name}: beacon {' '.join(command)}: {failure}") from None
    assert not (tmp_path / "beacon.db").exists()


# --------------------------------------------------------------------------- serve


async def wait_healthy(url: str, process: asyncio.subprocess.Process, timeout: float = 20) -> dict[str, str]:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            assert process.returncode is None, "the server exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return dict(await response.json())
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_serve_answers_healthz_and_stops_on_sigterm(env: dict[str, str]) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(BEACON), "serve", "--port", str(port), env=env, cwd=env["BEACON_TEST_CWD"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert await wait_healthy(f"http://127.0.0.1:{port}/healthz", process) == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


def catches_sigterm(pid: int) -> bool:
    """Whether the process has its own SIGTERM handler installed (Linux: the SigCgt mask)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.slow
async def test_worker_stops_on_sigterm(env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        str(BEACON), "worker", env=env, cwd=env["BEACON_TEST_CWD"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        path = env["BEACON_DATABASE_URL"][len("sqlite:///"):]
        async with asyncio.timeout(20):
            while True:  # started: the keys exist
                try:
                    with sqlite3.connect(path) as db:
                        if db.execute("SELECT count(*) FROM data_keys").fetchone()[0]:
                            break
                except sqlite3.Error:
                    pass
                await asyncio.sleep(0.1)
        await eventually(lambda: catches_sigterm(process.pid), 20, "the worker's SIGTERM handler")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.slow
async def test_import_command_dry_run_then_import_then_resume(env: dict[str, str], tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("Mobile;Lang;Region\n0912000001;Arabic;Tripoli\nn/a;ar;Tripoli\n0912000001;ar;Misrata\n"
                      "+218912000002;fr;Atlantis\n", encoding="utf-8")
    mapping = ("--map", "phone=Mobile,language=Lang,area=Region", "--region", "LY")
    dry = await beacon(env, "import", str(listed), *mapping, "--dry-run")
    assert dry.code == 0, dry.err
    assert "nothing was stored" in dry.out and "bad phone numbers: 1 - rows 3" in dry.out
    assert "duplicates within the file: 1 - rows 4 (as row 2)" in dry.out and "unknown areas" in dry.out
    with database(env) as conn:
        assert conn.execute("select count(*) from registrants").fetchone() == (0,)
    done = await beacon(env, "import", str(listed), *mapping, "--legal-basis", "vital_interests")
    assert done.code == 0 and "2 invitation(s) queued" in done.out, done.err
    again = await beacon(env, "import", str(listed), *mapping)
    assert "(legal basis: vital_interests): 0 invitation(s) queued" in again.out and "imported before: 2" in again.out
    with database(env) as conn:
        assert conn.execute("select count(*), min(step), min(legal_basis) from registrants").fetchone() == (
            2, "invited", "vital_interests")  # a resumed import keeps the basis it began with
        assert conn.execute("select count(*) from outbox").fetchone() == (2,)
    assert_one_line_error(await beacon(env, "import", str(listed), "--map", "phone=Phone", "--region", "LY"),
                          contains="no column 'Phone'")
    assert_one_line_error(await beacon(env, "import", str(listed), *mapping[:2], "--region", "XX"),
                          contains="--region")
