"""Shared pieces of the reliability tests: `beacon serve` as a real process group, tokens, seeded people.

Everything runs on 127.0.0.1 against real SQLite files; the provider is the local Twilio double.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from registry import arrangements, audit
from registry.aggregates import DIMENSIONS
from registry.arrangements import FORMATS, Terms
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, dev_keys
from tests.doubles.twilio_api import TwilioDouble
from tests.seeding import seed_registrants

BEACON = str(Path(sys.executable).parent / "beacon")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, twilio: TwilioDouble | None = None, **overrides: str) -> dict[str, str]:
    """The environment of a development `beacon serve` on a SQLite file under ``home``, with the double if given."""
    env = {**os.environ, "BEACON_DATABASE_URL": f"sqlite:///{home / 'beacon.db'}", "BEACON_KEYS": dev_keys(),
           "BEACON_ENV": "development", "BEACON_LOG_FORMAT": "json", "BEACON_PUBLIC_URL": "https://beacon.example.org"}
    if twilio is not None:
        env.update({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
                    "TWILIO_API_BASE_URL": twilio.base_url})
    env.update(overrides)
    return env


async def seed(env: Mapping[str, str], count: int) -> None:
    """Migrate the database of ``env`` and register ``count`` people (phones ``seeding.phone(1..count)``)."""
    db = Database(env["BEACON_DATABASE_URL"])
    try:
        await db.migrate()
        master = MasterKeys.parse(env["BEACON_KEYS"])
        await seed_registrants(db, KeyHolder(await load_keyring(db, master), master), count)
    finally:
        await db.close()


async def record_arrangement(env: Mapping[str, str]) -> int:
    """A sharing arrangement in force that allows every dimension, level and format; its id."""
    db = Database(env["BEACON_DATABASE_URL"])
    today = datetime.now(UTC).date()
    terms = Terms("Partner", "data@partner.example", ("planning",), DIMENSIONS, 5, 3, FORMATS, "weekly",
                  today - timedelta(days=1), today + timedelta(days=30), "agreement")
    try:
        await db.migrate()
        audit.use(MasterKeys.parse(env["BEACON_KEYS"]))  # keyed as the server keys the same chain
        async with db.write() as conn:
            return (await arrangements.record(conn, terms, "harness")).id
    finally:
        await db.close()


def create_token(env: Mapping[str, str], home: Path, role: str, name: str, arrangement: int | None = None) -> str:
    """An API token made by `beacon token create`, as an operator would (a partner's bound to ``arrangement``)."""
    bound = ["--arrangement", str(arrangement)] if arrangement is not None else []
    result = subprocess.run([BEACON, "token", "create", "--role", role, "--name", name, *bound], env=dict(env),
                            cwd=home, capture_output=True, text=True, check=True)
    return result.stdout.split()[-1]


class Server:
    """`beacon serve` as a real process in its own process group, restartable on the same port."""

    def __init__(self, env: Mapping[str, str], home: Path) -> None:
        self.env, self.home = dict(env), home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def spawn(self) -> None:
        """Start the process without waiting for it."""
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([BEACON, "serve", "--port", str(self.port)], env=self.env, cwd=self.home,
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.starts += 1

    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until /healthz answers 200."""
        self.spawn()
        await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until /healthz answers 200; AssertionError with the log's tail if it does not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while loop.time() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"beacon serve exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    async with session.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("beacon serve did not come up: " + self.log_tail())

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (a graceful stop that records what was sent), SIGKILL if that takes over 15 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
