"""BEACON_WEB_BOT=off: web processes (`beacon serve --no-worker`) only verify and store webhooks, and
`beacon worker` processes run the bot on what they stored, announced by NOTIFY or found by polling.

Real processes on PostgreSQL, replies through the Twilio double: every person's replies arrive in the
order of their messages, each message is answered once, and messages stored while no worker runs are
answered once one starts.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from beacon import config, drain, wakeups
from beacon.context import open_beacon
from bot.machine import step
from bot.state import BotConfig, Message, State
from campaigns.outbox import to_outbound
from channels.base import Inbound
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind, ProviderName
from registry import schema
from registry.db import Database
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, POSTGRES_URL, SMS_FROM, dev_keys, reset_postgres
from tests.doubles.twilio_api import TwilioDouble, signed_form_post
from tests.processes import BEACON, Process, healthy, postgres_env
from tests.reliability.harness import free_port
from tests.seeding import phone

PUBLIC_URL = "https://beacon.example.org"
PEOPLE = 12
SAID = ("JOIN", "1")  # each person's two messages, sent one right after the other


def expected_replies() -> list[str]:
    """What one newcomer is sent for JOIN then 1, by the conversation itself (no I/O)."""
    config = BotConfig(gazetteer=Gazetteer.load(None), operator="the crisis team", retention_months=24,
                       default_language="en", family_sharing=True)
    state, replies = State(), []
    for text in SAID:
        transition = step(config, state, Message(text=text, channel="sms", address=phone(1), at=datetime.now(UTC)))
        state = transition.state
        replies += [reply.text for reply in transition.replies]
    return replies


async def say(session: aiohttp.ClientSession, port: int, n: int, text: str, sid: str) -> None:
    """Person n writes ``text``, as Twilio delivers it: a signed webhook to the public URL."""
    url = PUBLIC_URL + "/webhooks/twilio/messages"
    headers, body = signed_form_post(AUTH_TOKEN, url, {"MessageSid": sid, "AccountSid": ACCOUNT_SID,
                                                        "From": phone(n), "To": "+15005550006", "Body": text})
    async with session.post(f"http://127.0.0.1:{port}/webhooks/twilio/messages", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()


async def everyone_says(session: aiohttp.ClientSession, port: int, first: int = 1) -> None:
    """PEOPLE people at once, each sending SAID one message right after the other."""
    async def person(n: int) -> None:
        for i, text in enumerate(SAID):
            await say(session, port, n, text, f"SM{n:030d}{i:02d}")

    await asyncio.gather(*(person(n) for n in range(first, first + PEOPLE)))


async def inbound_counts() -> tuple[int, int]:
    """(inbound messages stored, of which processed)."""
    assert POSTGRES_URL
    db = Database(POSTGRES_URL)
    try:
        async with db.read() as conn:
            i = schema.inbound.c
            stored = (await conn.execute(select(func.count()).select_from(schema.inbound))).scalar_one()
            done = (await conn.execute(select(func.count()).select_from(schema.inbound)
                                       .where(i.processed_at.is_not(None)))).scalar_one()
    finally:
        await db.close()
    return int(stored), int(done)


def assert_answered_in_order(twilio: TwilioDouble, people: range) -> None:
    expected = expected_replies()
    for n in people:
        assert [m.body for m in twilio.sent_to(phone(n))] == expected, n


def stop_all(*processes: Process) -> None:
    for process in processes:
        if process.proc is not None and process.proc.poll() is None:
            process.stop()


@pytest.fixture
async def postgres() -> str:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    db = Database(POSTGRES_URL)  # migrated once here, not by the processes racing each other
    try:
        await db.migrate()
    finally:
        await db.close()
    return POSTGRES_URL


class Woken:
    """Stands in for a worker's sender, runner or drainer: counts its wake-ups."""

    def __init__(self) -> None:
        self.times = 0
        self.changed = asyncio.Event()

    def wake(self) -> None:
        self.times += 1
        self.changed.set()

    async def until(self, at_least: int) -> None:
        async with asyncio.timeout(10):
            while self.times < at_least:
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.slow
async def test_an_inbound_announcement_wakes_the_drainer_only(postgres: str) -> None:
    db = Database(postgres)
    stop = asyncio.Event()
    try:
        announcer = wakeups.Announcer(db)
        sender, runner, drainer = Woken(), Woken(), Woken()
        tasks = [asyncio.create_task(announcer.run(stop)),
                 asyncio.create_task(wakeups.listen(postgres, sender, runner, stop,  # type: ignore[arg-type]
                                                    inbound=drainer.wake))]
        await drainer.until(1)  # listening: it looks once for what it may have missed
        await sender.until(1)
        for _ in range(50):  # a burst: announced together
            announcer.announce(wakeups.INBOUND)
        await drainer.until(2)
        await asyncio.sleep(0.3)
        assert drainer.times <= 3  # one NOTIFY per burst, not one per message
        assert (sender.times, runner.times) == (1, 1)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        await db.close()


@pytest.mark.slow
async def test_two_drainers_step_each_message_once_and_in_order(postgres: str, tmp_path: Path) -> None:
    keys = dev_keys()

    def settings(name: str) -> config.Settings:
        return config.load({"BEACON_DATABASE_URL": postgres, "BEACON_KEYS": keys, "BEACON_WEB_BOT": "off",
                            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                            "TWILIO_SMS_FROM": SMS_FROM, "BEACON_SPOOL_DIR": str(tmp_path / name)})

    async with open_beacon(settings("web")) as web, open_beacon(settings("a")) as a, open_beacon(settings("b")) as b:
        announced: list[int] = []
        web.intake.leave_to_workers(lambda: announced.append(1))

        async def person(n: int) -> None:
            for i, text in enumerate(SAID):
                await web.intake.accept(ProviderName.TWILIO, Inbound(ChannelKind.SMS, phone(n), text,
                                                                     f"SM{n:030d}{i:02d}", datetime.now(UTC)))

        await asyncio.gather(*(person(n) for n in range(1, PEOPLE + 1)))
        await web.service.wait_idle()
        assert announced
        assert await inbound_counts() == (PEOPLE * len(SAID), 0)  # stored, not processed by the web process
        drainers = [drain.Drainer(a.service, a.db, poll=None), drain.Drainer(b.service, b.db, poll=None)]
        while sum(await asyncio.gather(*(d.drain_once() for d in drainers))):
            pass
        assert await inbound_counts() == (PEOPLE * len(SAID), PEOPLE * len(SAID))
        async with web.db.read() as conn:
            rows = (await conn.execute(select(schema.outbox).order_by(schema.outbox.c.id))).all()
        sent: dict[str, list[str]] = {}
        for row in rows:
            outbound = to_outbound(web.keys.ring, dict(row._mapping), "en")
            sent.setdefault(outbound.address, []).append(outbound.text)
        assert sent == {phone(n): expected_replies() for n in range(1, PEOPLE + 1)}


@pytest.mark.slow
async def test_workers_answer_what_a_store_only_web_process_stored(postgres: str, tmp_path: Path) -> None:
    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = postgres_env(postgres, dev_keys(), twilio, BEACON_PUBLIC_URL=PUBLIC_URL, BEACON_WEB_BOT="off",
                           TWILIO_RATE_PER_SECOND="1000")
        port = free_port()
        web = Process(["serve", "--no-worker", "--port", str(port)], env, tmp_path, "web").start()
        workers = [Process(["worker"], env, tmp_path, f"worker{i}").start() for i in range(2)]
        try:
            async with aiohttp.ClientSession() as session:
                await healthy(session, web, port)
                await everyone_says(session, port)
                expected = len(expected_replies()) * PEOPLE
                await twilio.wait_for(lambda: len(twilio.messages) >= expected, timeout=60)
                await asyncio.sleep(1.0)  # anything sent twice would arrive meanwhile
            assert len(twilio.messages) == expected
            assert_answered_in_order(twilio, range(1, PEOPLE + 1))
            assert await inbound_counts() == (PEOPLE * len(SAID), PEOPLE * len(SAID))
            assert "process.failed" not in web.log_tail(100_000) + "".join(w.log_tail(100_000) for w in workers)
        finally:
            stop_all(web, *workers)


@pytest.mark.slow
async def test_messages_wait_for_a_worker_and_none_is_lost(postgres: str, tmp_path: Path) -> None:
    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = postgres_env(postgres, dev_keys(), twilio, BEACON_PUBLIC_URL=PUBLIC_URL, BEACON_WEB_BOT="off",
                           TWILIO_RATE_PER_SECOND="1000")
        port = free_port()
        web = Process(["serve", "--no-worker", "--port", str(port)], env, tmp_path, "web").start()
        worker = Process(["worker"], env, tmp_path, "worker")
        try:
            async with aiohttp.ClientSession() as session:
                await healthy(session, web, port)
                await everyone_says(session, port)  # every webhook answered 200 (checked in say)
                await asyncio.sleep(1.5)  # the web process would have answered by now if it ran the bot
                assert twilio.messages == []
                assert await inbound_counts() == (PEOPLE * len(SAID), 0)
                worker.start()
                expected = len(expected_replies()) * PEOPLE
                await twilio.wait_for(lambda: len(twilio.messages) >= expected, timeout=60)
                # The worker running, new messages are answered as they come.
                await everyone_says(session, port, first=PEOPLE + 1)
                await twilio.wait_for(lambda: len(twilio.messages) >= 2 * expected, timeout=60)
                await asyncio.sleep(1.0)
            assert len(twilio.messages) == 2 * expected
            assert_answered_in_order(twilio, range(1, 2 * PEOPLE + 1))
            assert await inbound_counts() == (2 * PEOPLE * len(SAID), 2 * PEOPLE * len(SAID))
        finally:
            stop_all(web, worker)


def refused(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEACON, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
async def test_store_only_needs_no_worker_and_postgresql(tmp_path: Path) -> None:
    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        url = POSTGRES_URL or "postgresql://beacon@127.0.0.1:1/beacon"  # refused before any connection
        env = postgres_env(url, dev_keys(), twilio, BEACON_WEB_BOT="off")
        together = refused(["serve", "--port", str(free_port())], env)
        assert together.returncode == 2
        assert "BEACON_WEB_BOT=off needs `beacon serve --no-worker`" in together.stderr

        sqlite = {**env, "BEACON_DATABASE_URL": f"sqlite:///{tmp_path}/beacon.db"}
        for args in (["serve", "--no-worker", "--port", str(free_port())], ["worker"]):
            alone = refused(args, sqlite)
            assert alone.returncode == 2
            assert "BEACON_WEB_BOT=off needs PostgreSQL" in alone.stderr
        assert not (tmp_path / "beacon.db").exists()

        wrong = refused(["serve", "--no-worker"], {**env, "BEACON_WEB_BOT": "maybe"})
        assert wrong.returncode == 2 and "BEACON_WEB_BOT must be on or off" in wrong.stderr
