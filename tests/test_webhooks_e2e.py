"""Outbound webhooks end to end: a local receiver gets signed case and tally events, a failed delivery is
retried, and the delivery log shows it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from registry import tokens
from tests.conftest import StartBeacon

PHONE = "+2348040000001"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does: recompute the HMAC over "<t>.<body>" and compare in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def bodies_id(received: list[tuple[dict[str, str], bytes]]) -> int:
    """The case id in the case.opened notification among ``received``."""
    events = [json.loads(body) for _, body in received]
    return int(next(e for e in events if e["event"] == "case.opened")["data"]["case"]["id"])


@pytest.mark.slow
async def test_signed_webhook_retried_after_500_and_logged(start_beacon: StartBeacon, database_url: str) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if calls["n"] == 1 else 200)

    personal: list[dict[str, Any]] = []

    async def case_system(request: web.Request) -> web.Response:
        personal.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/cases", case_system)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    try:
        beacon = await start_beacon(BEACON_WEBHOOK_RETRY_SECONDS="0.05", BEACON_DATABASE_URL=database_url)
        admin = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'admin', 'root')}"}
        responder = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'responder', 'resp')}"}
        url = str(receiver.make_url("/hook"))
        refused = await beacon.client.post("/api/v1/webhooks", headers=admin, json={
            "url": url, "events": ["checkins.changed"], "include_personal_data": True})
        assert refused.status == 422  # personal data only ever goes with case events
        assert (await beacon.client.post("/api/v1/webhooks", headers=responder,
                                         json={"url": url, "events": ["case.opened"]})).status == 403
        created = await beacon.client.post("/api/v1/webhooks", headers=admin,
                                           json={"url": url, "events": ["case.opened", "checkins.changed",
                                                                              "broadcast.finished"]})
        assert created.status == 201, await created.text()
        subscription = await created.json()
        secret = subscription["secret"]
        listed = await (await beacon.client.get("/api/v1/webhooks", headers=admin)).json()
        assert [h["id"] for h in listed["items"]] == [subscription["id"]] and "secret" not in listed["items"][0]
        with_data = await beacon.client.post("/api/v1/webhooks", headers=admin, json={
            "url": str(receiver.make_url("/cases")), "events": ["case.opened"], "include_personal_data": True})
        assert with_data.status == 201

        await beacon.converse(PHONE, "JOIN", "1", "1", "tripoli", "0", "0", "0", "0", "0", "0")
        sent = await beacon.client.post("/api/v1/broadcasts", headers=responder,
                                        json={"text": {"en": "Flood"}, "check_in": True})
        broadcast_id = (await sent.json())["id"]
        for _ in range(100):
            if (await (await beacon.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=responder)).json()
                    )["counts"]["sent"]:
                break
            await asyncio.sleep(0.05)
        await beacon.simulate(PHONE, "2")  # need help: a check-in and a case

        deliveries: list[dict[str, Any]] = []
        for _ in range(200):
            log = await beacon.client.get(f"/api/v1/webhooks/{subscription['id']}/deliveries", headers=admin)
            deliveries = (await log.json())["items"]
            if len(deliveries) == 3 and all(d["status"] == "delivered" for d in deliveries):
                break
            await asyncio.sleep(0.05)
        assert {d["event"] for d in deliveries} == {"case.opened", "checkins.changed", "broadcast.finished"}
        assert all(d["status_code"] == 200 and d["delivered_at"] for d in deliveries)
        assert sorted(d["attempts"] for d in deliveries) == [1, 1, 2]  # the first post got a 500 and was retried
        assert not any("payload" in d or "data" in d for d in deliveries)

        assert len(received) == 4
        for _ in range(100):
            if personal:
                break
            await asyncio.sleep(0.05)
        shared = personal[0]["data"]["case"]  # a case system allowed personal data gets the responder's view
        assert shared["id"] == bodies_id(received) and {"registrant_id", "details", "notes"} <= set(shared)
        bodies = {}
        for headers, body in received:
            assert verify(secret, headers["X-Beacon-Signature"], body)
            assert not verify("whsec_wrong", headers["X-Beacon-Signature"], body)
            payload = json.loads(body)
            assert payload["event"] == headers["X-Beacon-Event"]
            bodies[payload["event"]] = payload
        assert PHONE not in b"".join(body for _, body in received).decode()
        case = bodies["case.opened"]["data"]["case"]
        assert case["status"] == "open" and case["area"] == "tripoli"
        assert "registrant_id" not in case and "details" not in case  # no personal data unless enabled
        assert bodies["checkins.changed"]["data"] == {
            "broadcast_id": broadcast_id, "counts": {"recipients": 1, "safe": 0, "need_help": 1, "no_reply": 0}}
        assert bodies["broadcast.finished"]["data"]["broadcast"]["id"] == broadcast_id
        assert bodies["broadcast.finished"]["data"]["broadcast"]["recipients"] == 1

        assert (await beacon.client.delete(f"/api/v1/webhooks/{subscription['id']}", headers=admin)).status == 204
        remaining = (await (await beacon.client.get("/api/v1/webhooks", headers=admin)).json())["items"]
        assert [h["id"] for h in remaining] == [(await with_data.json())["id"]]
    finally:
        await receiver.close()
