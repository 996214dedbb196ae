"""The OpenAPI document describes what the server really answers: real responses are validated against it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import StartBeacon
from tests.test_broadcasts_e2e import register, token, wait_counts


def validate(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Check one JSON response against the document's schema for that operation and status."""
    template = next(p for p in document["paths"] if re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", p), path))
    responses = document["paths"][template][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {template} may not answer {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": document["components"]}).validate(body)


@pytest.mark.slow
async def test_responses_match_the_document(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})
    for n in range(4):
        await register(beacon, f"+23480100002{n:02d}", "1")
    headers = await token(beacon)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("post", "/api/v1/broadcasts/preview", {"text": {"en": "Test"}, "check_in": True}),
        ("post", "/api/v1/broadcasts", {"text": {"en": "Test"}, "check_in": True}),
        ("post", "/api/v1/broadcasts", {"text": {"en": "x"}, "audience": {"areas": ["nowhere"]}}),
        ("get", "/api/v1/broadcasts", None),
        ("get", "/api/v1/broadcasts/1", None),
        ("get", "/api/v1/broadcasts/999", None),
    ]
    for method, path, body in calls:
        response = await beacon.client.request(method, path, json=body, headers=headers)
        validate(document, path, method, response.status, await response.json())
    await wait_counts(beacon, headers, 1, sent=4)
    await beacon.simulate("+2348010000200", "2")
    await beacon.simulate("+2348010000200", "1")
    await asyncio.sleep(0)
    cases = await beacon.client.get("/api/v1/cases?status=open", headers=headers)
    listed = await cases.json()
    validate(document, "/api/v1/cases", "get", cases.status, listed)
    case_id = listed["items"][0]["id"]
    for change in ({"status": "in_progress", "note": "on it"}, {"status": "bogus"}, {"status": "open"}):
        patched = await beacon.client.patch(f"/api/v1/cases/{case_id}", json=change, headers=headers)
        validate(document, f"/api/v1/cases/{case_id}", "patch", patched.status, await patched.json())
    cancelled = await beacon.client.post("/api/v1/broadcasts/1/cancel", headers=headers)
    validate(document, "/api/v1/broadcasts/1/cancel", "post", cancelled.status, await cancelled.json())
    auditor = await token(beacon, "auditor", "aud")
    audit = await beacon.client.get("/api/v1/audit", headers=auditor)
    validate(document, "/api/v1/audit", "get", audit.status, await audit.json())
    analyst = await token(beacon, "analyst", "ana")
    for path in ("/api/v1/stats?by=area,language", "/api/v1/stats?by=planet"):
        stats = await beacon.client.get(path, headers=analyst)
        validate(document, path.split("?")[0], "get", stats.status, await stats.json())
    forbidden = await beacon.client.get("/api/v1/cases", headers=analyst)
    validate(document, "/api/v1/cases", "get", forbidden.status, await forbidden.json())
    unauthorised = await beacon.client.get("/api/v1/broadcasts")
    validate(document, "/api/v1/broadcasts", "get", unauthorised.status, await unauthorised.json())
