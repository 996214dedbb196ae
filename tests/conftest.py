"""Shared fixtures: a running Beacon on a real SQLite file (or PostgreSQL), with local provider doubles;
and, for unit tests, its parts (database, keys, sender, service, runner) on a real SQLite file.

Nothing may leave 127.0.0.1: the guard below fails any other connection.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from beacon import config
from beacon.app import create_app
from beacon.context import BEACON, Beacon
from beacon.service import Service
from bot.state import BotConfig
from campaigns.scheduler import Runner
from campaigns.sender import Sender
from channels.simulator import SimulatorChannel
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind, ProviderName
from registry import audit
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.doubles.telegram_api import TelegramDouble
from tests.doubles.twilio_api import TwilioDouble, sign
from tests.doubles.twilio_voice import Phone, VoiceApi


def _own_database(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets a database of its own (``test_gw0``, ...), created on first use."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path}_{worker}"))


SHARED_POSTGRES_URL = os.environ.get("BEACON_TEST_POSTGRES_URL")
POSTGRES_URL = _own_database(SHARED_POSTGRES_URL)
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "whatsapp:+14155238886"
VOICE_FROM = "+15005550007"
TELEGRAM_TOKEN = "123456789:TEST-token"
TELEGRAM_SECRET = "test-secret-token"

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"test tried to reach {host}: tests must stay on 127.0.0.1")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection that leaves this machine."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def audit_keys() -> None:
    """Key this test process's audit entries with fresh master keys, as every Beacon process keys its own."""
    audit.use(MasterKeys.parse(dev_keys()))


def dev_keys() -> str:
    """A BEACON_KEYS value with one fresh key."""
    return "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Create the PostgreSQL database the tests use (this worker's own when they run in parallel)."""
    if SHARED_POSTGRES_URL and POSTGRES_URL:
        asyncio.run(_create_database(SHARED_POSTGRES_URL, urlsplit(POSTGRES_URL).path.lstrip("/")))


async def _create_database(url: str, name: str) -> None:
    # Through the server's maintenance database: the database the URL names need not exist.
    conn = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def reset_postgres(url: str) -> None:
    """Empty the test database."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a real SQLite file, and PostgreSQL when BEACON_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'beacon.db'}"
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


def environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A development configuration under ``tmp_path``."""
    env = {
        "BEACON_ENV": "development",
        "BEACON_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}",
        "BEACON_KEYS": dev_keys(),
        "BEACON_PUBLIC_URL": "https://beacon.example.org",
        "BEACON_LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


class Running:
    """A Beacon app served on 127.0.0.1 with its doubles, and helpers to talk to it."""

    def __init__(self, client: TestClient[Any, Any], twilio: TwilioDouble | None, telegram: TelegramDouble | None,
                 settings: config.Settings) -> None:
        self.client = client
        self.twilio = twilio
        self.telegram = telegram
        self.settings = settings
        self.voice: VoiceApi | None = None

    async def post_form(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """A form POST to the app, as a provider's webhook: (status, body)."""
        response = await self.client.post(path, data=form, headers=headers)
        return response.status, await response.text()

    def phone(self, number: str) -> Phone:
        """A phone that calls Beacon's voice number (or answers its calls), through the voice double."""
        return Phone(self.post_form, AUTH_TOKEN, self.settings.public_url, number, VOICE_FROM)

    @property
    def beacon(self) -> Beacon:
        return self.client.app[BEACON]  # type: ignore[index]

    async def simulate(self, sender: str, text: str) -> list[str]:
        """One message through the simulator; the bot's replies."""
        response = await self.client.post("/simulator/messages", json={"from": sender, "text": text})
        assert response.status == 200, await response.text()
        return list((await response.json())["replies"])

    async def converse(self, sender: str, *texts: str) -> list[str]:
        """Several messages; the replies to the last one."""
        replies: list[str] = []
        for text in texts:
            replies = await self.simulate(sender, text)
        return replies

    async def twilio_inbound(self, sender: str, body: str, sid: str | None = None, *, signed: bool = True,
                             **extra: str) -> web.Response:
        """A Twilio inbound webhook as Twilio would sign it."""
        params = {"MessageSid": sid or "SM" + secrets.token_hex(16), "AccountSid": ACCOUNT_SID, "From": sender,
                  "To": WHATSAPP_FROM if sender.startswith("whatsapp:") else SMS_FROM, "Body": body,
                  "NumMedia": "0", **extra}
        path = "/webhooks/twilio/messages"
        headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, self.settings.public_url + path, params)} if signed else {}
        return await self.client.post(path, data=params, headers=headers)  # type: ignore[return-value]

    async def twilio_status(self, sid: str, status: str, error_code: str | None = None) -> web.Response:
        """A signed delivery status callback."""
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
        if error_code:
            params["ErrorCode"] = error_code
        path = "/webhooks/twilio/status"
        headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, self.settings.public_url + path, params)}
        return await self.client.post(path, data=params, headers=headers)  # type: ignore[return-value]

    async def telegram_update(self, update: dict[str, Any], secret: str = TELEGRAM_SECRET) -> web.Response:
        """A Bot API update posted to the webhook."""
        return await self.client.post(  # type: ignore[return-value]
            "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})


StartBeacon = Callable[..., Any]


@pytest.fixture
async def start_beacon(tmp_path: Path) -> AsyncIterator[StartBeacon]:
    """Start Beacon (and the doubles asked for); everything is closed after the test."""
    opened: list[Any] = []

    async def start(*, twilio: bool = False, telegram: bool = False, worker: bool = True, voice: bool = False,
                    **env: str) -> Running:
        values = environment(tmp_path, **env)
        twilio_double = telegram_double = None
        voice_api = VoiceApi(ACCOUNT_SID) if voice else None
        if twilio or voice:
            twilio_double = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
            if voice_api is not None:
                twilio_double.extensions.append(voice_api)
                values["TWILIO_VOICE_FROM"] = VOICE_FROM
            await twilio_double.start()
            opened.append(twilio_double)
            values.update({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                           "TWILIO_SMS_FROM": SMS_FROM, "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
                           "TWILIO_API_BASE_URL": twilio_double.base_url})
        if telegram:
            telegram_double = TelegramDouble(TELEGRAM_TOKEN)
            await telegram_double.start()
            opened.append(telegram_double)
            values.update({"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
                           "TELEGRAM_API_BASE_URL": telegram_double.base_url})
        values.setdefault("BEACON_RATE_LIMITS", "off")
        if not (twilio or telegram or voice):
            values.setdefault("BEACON_SIMULATOR", "on")
        settings = config.load(values)
        client = TestClient(TestServer(create_app(settings, worker=worker), host="127.0.0.1"))
        await client.start_server()
        opened.insert(0, client)
        running = Running(client, twilio_double, telegram_double, settings)
        running.voice = voice_api
        return running

    yield start
    for thing in opened:
        await thing.close()


# -- the parts, for unit tests -------------------------------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database in a real SQLite file."""
    database = Database(f"sqlite:///{tmp_path / 'unit.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def keys(db: Database) -> KeyHolder:
    """The data keys, under a fresh master key."""
    master = MasterKeys.parse(dev_keys())
    return KeyHolder(await load_keyring(db, master), master)


@pytest.fixture
def gazetteer() -> Gazetteer:
    return Gazetteer.load()


@pytest.fixture
def simulator() -> SimulatorChannel:
    """The simulator provider: what it is given to send is kept in ``sent``, by address."""
    return SimulatorChannel()


@pytest.fixture
async def sender(db: Database, keys: KeyHolder, simulator: SimulatorChannel) -> AsyncIterator[Sender]:
    """The sender loop, running over the simulator until the test ends."""
    loop = Sender(db, keys, {ChannelKind.SIMULATOR: simulator})
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop, idle=0.05))
    yield loop
    stop.set()
    loop.wake()
    await running


@pytest.fixture
async def service(db: Database, keys: KeyHolder, gazetteer: Gazetteer, simulator: SimulatorChannel,
                  sender: Sender) -> AsyncIterator[Service]:
    """The message path, with the simulator as its only provider."""
    path = Service(db, keys, BotConfig(gazetteer=gazetteer), {ProviderName.SIMULATOR: simulator}, sender,
                   family_channel=ChannelKind.SIMULATOR)
    yield path
    await path.close()


@pytest.fixture
async def runner(db: Database, keys: KeyHolder, gazetteer: Gazetteer, sender: Sender) -> AsyncIterator[Runner]:
    """The broadcast and reminder runner, not started: tests call it or run it themselves."""
    broadcasts = Runner(db, keys, gazetteer, sender, default_language="en", family_channel=ChannelKind.SIMULATOR)
    yield broadcasts
    broadcasts.stop_schedule()
