"""Several Beacon processes on one database, as a deployment runs them: `beacon serve --no-worker` and
`beacon worker` as real process groups, their output in log files under the test's directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM
from tests.doubles.twilio_api import TwilioDouble

BEACON = str(Path(sys.executable).parent / "beacon")


def postgres_env(url: str, keys: str, twilio: TwilioDouble | str, **overrides: str) -> dict[str, str]:
    """The environment of Beacon processes sharing the PostgreSQL database ``url``, sending through the double
    (or the double at this base URL, when it runs in another process)."""
    env = {**os.environ, "BEACON_DATABASE_URL": url, "BEACON_KEYS": keys, "BEACON_ENV": "development",
           "BEACON_LOG_FORMAT": "json", "BEACON_PUBLIC_URL": "https://beacon.example.org",
           "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM,
           "TWILIO_API_BASE_URL": twilio if isinstance(twilio, str) else twilio.base_url}
    env.update(overrides)
    return env


class Process:
    """One `beacon ...` command as its own process group, logging to ``<home>/<name>.log``."""

    def __init__(self, args: list[str], env: Mapping[str, str], home: Path, name: str) -> None:
        self.args, self.env, self.home, self.name = args, dict(env), home, name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start the process without waiting for it to be ready."""
        with open(self.home / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen([BEACON, *self.args], env=self.env, cwd=self.home, stdout=log, stderr=log,
                                         start_new_session=True)
        return self

    def log_tail(self, chars: int = 3000) -> str:
        path = self.home / f"{self.name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it takes over 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


async def healthy(session: aiohttp.ClientSession, web: Process, port: int) -> None:
    """Wait until the web process answers /healthz (90 s at most), failing early if it exits."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert web.proc is not None and web.proc.poll() is None, web.log_tail()
        try:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("web process did not come up: " + web.log_tail())
