"""The configured CAP feed (``BEACON_CAP_FEED_URL``), polled by the worker: each new alert becomes a draft."""

from __future__ import annotations

import aiohttp
import structlog

from campaigns import cap
from domain.areas import Gazetteer
from registry.db import Database

log = structlog.get_logger("beacon.cap")
TIMEOUT = aiohttp.ClientTimeout(total=30)
MAX_BODY = 2 * 1024 * 1024
FEED_ACTOR = "cap-feed"


class CapFeed:
    """One feed: fetched on each poll; the alerts an Atom entry links to are fetched once per process."""

    def __init__(self, db: Database, gazetteer: Gazetteer, url: str) -> None:
        self.db = db
        self.gazetteer = gazetteer
        self.url = url
        self._fetched: set[str] = set()

    async def poll(self) -> dict[str, int]:
        """Fetch the feed and apply every alert in it not seen before; outcomes counted (never raises)."""
        counts: dict[str, int] = {}
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                for item in cap.alerts_in(await self._get(session, self.url)):
                    if isinstance(item, str):
                        if item in self._fetched:
                            continue
                        self._fetched.add(item)
                        try:
                            item = cap.parse(await self._get(session, item))
                        except (cap.CapError, aiohttp.ClientError, TimeoutError) as exc:
                            log.warning("cap.entry_unusable", error=type(exc).__name__)
                            continue
                    outcome = await cap.receive(self.db, self.gazetteer, item, FEED_ACTOR)
                    counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        except (cap.CapError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cap.feed_unusable", error=type(exc).__name__)
        if counts:
            log.info("cap.feed_polled", **counts)
        return counts

    async def _get(self, session: aiohttp.ClientSession, url: str) -> bytes:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.content.read(MAX_BODY)
