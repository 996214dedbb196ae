"""Waits shared by the tests: each returns on an observable state, within a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from registry import schema
from tests.conftest import Running


async def settle(run: Running, timeout: float = 30.0) -> None:
    """Wait until every stored message is processed and the outbox is drained (retries included).

    Needs the worker (the sender loop) running.
    """
    beacon = run.beacon
    queued = -1
    try:
        async with asyncio.timeout(timeout):
            while True:
                await beacon.service.wait_idle()
                await beacon.sender.wait_idle()
                queued = await waiting_retries(run)
                if not queued and beacon.service.idle:
                    return
                if queued:  # nothing is due now, but a retry is: it comes within the deadline
                    await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not settled after {timeout} s: {queued} outbox rows waiting for a retry, "
                             f"processing idle: {beacon.service.idle}") from None


async def waiting_retries(run: Running) -> int:
    """Outbox rows queued for a later attempt."""
    o = schema.outbox.c
    async with run.beacon.db.read() as conn:
        query = select(func.count()).select_from(schema.outbox).where(o.status == "queued")
        return int((await conn.execute(query)).scalar_one())


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll ``check`` (plain or async) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.01)
