"""Polls end to end: a broadcast asks a multiple-choice question, people answer in their own way and
language, the API tallies the answers live and publishes them as suppressed aggregates."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from registry import schema, tokens
from tests.conftest import Running, StartBeacon
from tests.test_disclosure import recoverable
from tests.test_stats_api import as_table

POLL = {"question": {"en": "Do you plan to leave the country in the next month?",
                     "fr": "Prévoyez-vous de quitter le pays le mois prochain ?",
                     "ar": "هل تنوي مغادرة البلد خلال الشهر القادم؟"},
        "options": [{"en": "yes", "fr": "oui", "ar": "نعم"}, {"en": "no", "fr": "non", "ar": "لا"},
                    {"en": "not sure", "fr": "pas sûr", "ar": "غير متأكد"}]}
# phone -> (language menu number, area)
PEOPLE = {"+2348030000001": ("1", "tripoli"), "+2348030000002": ("2", "tripoli"),
          "+2348030000003": ("5", "tripoli"), "+2348030000004": ("1", "tripoli"),
          "+2348030000005": ("1", "misrata"), "+2348030000006": ("1", "misrata")}
EN, FR, AR, HELPER, M1, M2 = PEOPLE


async def register(beacon: Running) -> None:
    async def one(phone: str, language: str, area: str) -> None:
        await beacon.converse(phone, "JOIN", language, "1", area, "0", "0", "0", "0", "0", "0")

    await asyncio.gather(*(one(phone, *facts) for phone, facts in PEOPLE.items()))


async def bearer(beacon: Running, role: str, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, role, name)}"}


async def broadcast(beacon: Running, headers: dict[str, str], **extra: Any) -> int:
    body = {"text": {"en": "Border news", "fr": "Nouvelles de la frontière", "ar": "أخبار الحدود"}, **extra}
    created = await beacon.client.post("/api/v1/broadcasts", json=body, headers=headers)
    assert created.status == 201, await created.text()
    broadcast_id = int((await created.json())["id"])
    for _ in range(200):
        got = await (await beacon.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=headers)).json()
        if got["counts"]["sent"] == got["counts"]["recipients"] > 0:
            return broadcast_id
        await asyncio.sleep(0.05)
    raise AssertionError("the broadcast never left")


@pytest.mark.slow
async def test_poll_answers_in_three_languages_tallied_and_suppressed(start_beacon: StartBeacon,
                                                                     database_url: str) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await register(beacon)
    responder = await bearer(beacon, "responder", "resp")
    poll_id = await broadcast(beacon, responder, poll=POLL)
    simulator = beacon.beacon.providers["simulator"]
    sent_fr = simulator.sent[FR][-1]  # type: ignore[attr-defined]
    assert "Prévoyez-vous" in sent_fr and "1 oui" in sent_fr and "3 pas sûr" in sent_fr
    assert "2 لا" in simulator.sent[AR][-1]  # type: ignore[attr-defined]

    assert "no" in " ".join(await beacon.simulate(EN, "2"))
    assert "نعم" in " ".join(await beacon.simulate(AR, "١"))  # Arabic-Indic one: yes
    await beacon.simulate(FR, "PAS SUR")  # the option's words, case and accent ignored
    help_reply = " ".join(await beacon.simulate(HELPER, "HELP"))  # a command, never an answer
    assert "UPDATE" in help_reply
    await beacon.simulate(M1, "3")
    await beacon.simulate(M2, "1")
    await beacon.simulate(EN, "yes")  # the latest answer wins
    assert "1" in " ".join(await beacon.simulate(M2, "7"))  # not an option: asked again, nothing recorded

    got = await (await beacon.client.get(f"/api/v1/broadcasts/{poll_id}", headers=responder)).json()
    assert got["counts"]["poll"] == {"1": 3, "2": 0, "3": 2}
    assert "safe" not in got["counts"]  # no check-in was asked, and a poll answer is never one
    async with beacon.beacon.db.read() as conn:
        r, rc = schema.registrants.c, schema.recipients.c
        assert (await conn.execute(select(r.last_check_in).where(r.last_check_in.is_not(None)))).all() == []
        assert (await conn.execute(select(rc.answer).where(rc.answer.is_not(None)))).all() == []

    analyst = await bearer(beacon, "analyst", "ana")
    response = await beacon.client.get(f"/api/v1/stats/polls/{poll_id}?by=area", headers=analyst)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["by"] == ["answer", "area"] and body["min_cell"] == 3 and body["broadcast"] == poll_id
    truth = Counter({("1", "tripoli"): 2, ("3", "tripoli"): 1, ("no_reply", "tripoli"): 1,
                     ("3", "misrata"): 1, ("1", "misrata"): 1})
    for cell in body["cells"]:
        assert cell["suppressed"] == (cell["count"] is None)
        if not cell["suppressed"]:
            assert cell["count"] == truth[(cell["answer"], cell["area"])] >= 3
    assert body["total"]["count"] in (6, None)
    assert recoverable(dict(truth), as_table(body)) == []
    by_answer = await (await beacon.client.get(f"/api/v1/stats/polls/{poll_id}?by=nationality",
                                               headers=analyst)).json()
    assert by_answer["by"] == ["answer", "nationality"]

    plain = await broadcast(beacon, responder)
    assert (await beacon.client.get(f"/api/v1/stats/polls/{plain}", headers=analyst)).status == 404
    assert (await beacon.client.get(f"/api/v1/stats/polls/{poll_id}?by=status", headers=analyst)).status == 422
    assert (await beacon.client.get(f"/api/v1/stats/polls/{poll_id}")).status == 401
    auditor = await bearer(beacon, "auditor", "aud")
    assert (await beacon.client.get(f"/api/v1/stats/polls/{poll_id}", headers=auditor)).status == 403
    bad = {"question": {"en": "?"}, "options": [{"en": "only one"}]}
    refused = await beacon.client.post("/api/v1/broadcasts", json={"text": {"en": "x"}, "poll": bad},
                                       headers=responder)
    assert refused.status == 422


async def test_check_in_first_then_the_poll(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    await beacon.converse(EN, "JOIN", "1", "1", "tripoli", "0", "0", "0", "0", "0", "0")
    responder = await bearer(beacon, "responder", "resp")
    both = await broadcast(beacon, responder, check_in=True, poll=POLL)
    replies = await beacon.simulate(EN, "1")  # the check-in: safe; then the poll is asked
    assert "safe" in replies[0] and "1 yes" in replies[-1]
    await beacon.simulate(EN, "2")  # now the poll's "no"
    got = await (await beacon.client.get(f"/api/v1/broadcasts/{both}", headers=responder)).json()
    assert got["counts"]["safe"] == 1 and got["counts"]["poll"] == {"1": 0, "2": 1, "3": 0}
