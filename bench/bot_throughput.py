"""How many messages a second Beacon handles: the conversation alone, the full path, and bare aiohttp.

Run it from the project directory:

    .venv/bin/python bench/bot_throughput.py
    .venv/bin/python bench/bot_throughput.py --people 400 --concurrency 100   # bigger run
    .venv/bin/python bench/bot_throughput.py --profile full                   # cProfile of the full path

It prints messages/second for

(a) ``bot.machine.step`` alone: whole registrations of many distinct simulated people, no I/O;
(b) the full path: ``POST /simulator/messages`` on the real app (SQLite in a temporary directory,
    sender running as in ``beacon serve``) behind an aiohttp ``TestServer`` on 127.0.0.1, driven by
    many concurrent aiohttp client requests from many distinct phone numbers, each person's messages
    in order;
(c) a bare aiohttp handler that does nothing, driven the same way in the same run;

and the ratio (b)/(c). The target is (b) >= 25 % of (c). This is a benchmark, not a test: numbers
depend on the machine, so nothing asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import logging
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beacon import config  # noqa: E402
from beacon.app import create_app  # noqa: E402
from beacon.logs import configure  # noqa: E402
from bot import machine  # noqa: E402
from bot.state import BotConfig, Message, State  # noqa: E402
from domain.areas import Gazetteer  # noqa: E402

CONTACT = "+2348087654321"
# One whole registration, then a look at what is held: every message moves the conversation on.
CONVERSATION = ("JOIN", "1", "YES", "tripoli", "Amina", "Nigeria", "1", "2", "3", CONTACT, "MYDATA")


def phone(n: int) -> str:
    """A distinct, possible Nigerian mobile number for person ``n``."""
    return f"+234803{n:07d}"


# --------------------------------------------------------------------------- (a) the state machine


def bench_machine(people: int) -> float:
    """Messages/second through ``machine.step`` for ``people`` whole registrations."""
    bot = BotConfig(gazetteer=Gazetteer.load())
    now = datetime.now(UTC)
    states = [State() for _ in range(people)]
    started = time.perf_counter()
    for text in CONVERSATION:
        for n in range(people):
            message = Message(text=text, channel="simulator", address=phone(n), at=now)
            states[n] = machine.step(bot, states[n], message).state
    elapsed = time.perf_counter() - started
    assert all(s.registered and s.profile.first_name == "Amina" for s in states), "registrations did not complete"
    return people * len(CONVERSATION) / elapsed


# --------------------------------------------------------------------------- (b) and (c) over HTTP


async def drive(base_url: str, people: range, concurrency: int) -> tuple[int, float]:
    """Every person in ``people`` sends the conversation in order; ``concurrency`` people at once."""
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    sent = 0

    async with aiohttp.ClientSession(connector=connector) as session:
        async def person(n: int) -> None:
            nonlocal sent
            async with slots:
                for text in CONVERSATION:
                    async with session.post(f"{base_url}/simulator/messages",
                                            json={"from": phone(n), "text": text}) as response:
                        if response.status != 200:
                            raise RuntimeError(f"{response.status}: {await response.text()}")
                        await response.json()
                    sent += 1

        started = time.perf_counter()
        await asyncio.gather(*(person(n) for n in people))
        return sent, time.perf_counter() - started


async def serve_and_drive(app: web.Application, people: int, concurrency: int, warmup: int,
                          before: Callable[[], Awaitable[None]] | None = None) -> float:
    """Messages/second for ``app``, after ``warmup`` people have gone through it."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        await drive(base, range(warmup), concurrency)
        if before:
            await before()
        sent, elapsed = await drive(base, range(warmup, warmup + people), concurrency)
    finally:
        await server.close()
    return sent / elapsed


def full_app(directory: Path) -> web.Application:
    settings = config.load({
        "BEACON_ENV": "development",
        "BEACON_DATABASE_URL": f"sqlite:///{directory / 'beacon.db'}",
        "BEACON_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "BEACON_RATE_LIMITS": "off",
        "BEACON_LOG_FORMAT": "json",
        "BEACON_SIMULATOR": "on",
    })
    return create_app(settings, worker=True)


def bare_app() -> web.Application:
    async def nothing(request: web.Request) -> web.Response:
        return web.json_response({"replies": []})

    app = web.Application()
    app.router.add_post("/simulator/messages", nothing)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=300, help="distinct phone numbers per HTTP run")
    parser.add_argument("--machine-people", type=int, default=3000, help="distinct states for (a)")
    parser.add_argument("--concurrency", type=int, default=64, help="people talking at the same time")
    parser.add_argument("--warmup", type=int, default=30, help="people sent before timing")
    parser.add_argument("--log-level", default="warning", help="the service's log level (logs go to stderr)")
    parser.add_argument("--profile", choices=("full", "bare"), help="print a cProfile of one HTTP run")
    args = parser.parse_args()
    configure("json", args.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    per_message = len(CONVERSATION)
    print(f"each person sends {per_message} messages: {' / '.join(CONVERSATION)}")
    machine_rate = bench_machine(args.machine_people)
    print(f"(a) state machine alone      {machine_rate:10.0f} messages/s  ({args.machine_people} people)")

    with tempfile.TemporaryDirectory() as tmp:
        profiler = cProfile.Profile() if args.profile else None

        async def run() -> tuple[float, float]:
            bare = await serve_and_drive(bare_app(), args.people, args.concurrency, args.warmup,
                                         _enable(profiler) if profiler and args.profile == "bare" else None)
            if profiler and args.profile == "bare":
                profiler.disable()
            full = await serve_and_drive(full_app(Path(tmp)), args.people, args.concurrency, args.warmup,
                                         _enable(profiler) if profiler and args.profile == "full" else None)
            if profiler:
                profiler.disable()
            return full, bare

        full, bare = asyncio.run(run())
    print(f"(b) full path, SQLite        {full:10.0f} messages/s  ({args.people} people, "
          f"{args.concurrency} at a time)")
    print(f"(c) bare aiohttp handler     {bare:10.0f} messages/s")
    ratio = full / bare
    print(f"(b)/(c) = {ratio:.1%}  (target >= 25%: {'met' if ratio >= 0.25 else 'NOT met'})")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def _enable(profiler: cProfile.Profile) -> Callable[[], Awaitable[None]]:
    async def enable() -> None:
        profiler.enable()

    return enable


if __name__ == "__main__":
    main()
