"""A poll written in the console: the compose form's question and options, their mistakes explained with what was
typed kept, the preview showing what each language group receives, sending through the API's path, and the
broadcast page's tally of the answers, suppressed exactly as the stats API publishes it."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

from registry import tokens, users
from tests.conftest import Running, StartBeacon
from tests.test_console import HTTP, PASSWORD, sign_in

# phone -> language (the menu takes ISO codes); everyone in Tripoli
PEOPLE = {"+2348060000001": "en", "+2348060000002": "fr", "+2348060000003": "ar", "+2348060000004": "en",
          "+2348060000005": "en", "+2348060000006": "en"}
EN, FR, AR, EN2, _, _ = PEOPLE
FORM = {"text_en": "Border news", "text_fr": "Nouvelles de la frontière",
        "poll_question_en": "Do you plan to leave?", "poll_question_fr": "Prévoyez-vous de partir ?",
        "poll_option_1_en": "yes", "poll_option_1_fr": "oui",
        "poll_option_3_en": "no", "poll_option_3_fr": "non",  # an empty row between is left out
        "poll_option_4_en": "not sure", "poll_option_4_fr": "pas sûr",
        "check_in": "", "remind_after_minutes": ""}


async def register(run: Running) -> None:
    await asyncio.gather(*(run.converse(phone, "JOIN", menu, "1", "tripoli", "0", "0", "0", "0", "0", "0")
                           for phone, menu in PEOPLE.items()))


def bubbles(page: str) -> dict[str, str]:
    """The preview's sample message of each language group."""
    found = re.findall(r'<figcaption lang="(\w+)">.*?<blockquote class="bubble"[^>]*>(.*?)</blockquote>', page, re.S)
    return {code: html.unescape(text) for code, text in found}


def shown_counts(page: str) -> dict[str, str]:
    return {key: html.unescape(value) for key, value in re.findall(r'data-count="(poll_\w+)"[^>]*>([^<]*)<', page)}


async def until_sent(run: Running, broadcast_id: int, headers: dict[str, str]) -> None:
    for _ in range(200):
        got = await (await run.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=headers)).json()
        if got["counts"]["sent"] == got["counts"]["recipients"] > 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the broadcast never left")


async def test_a_poll_composed_previewed_sent_and_tallied_with_suppression(start_beacon: StartBeacon,
                                                                           database_url: str) -> None:
    run = await start_beacon(**HTTP, BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await register(run)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    form = await (await run.client.get("/console/compose")).text()
    assert 'name="poll_question_fr"' in form and 'name="poll_option_9_en"' in form

    # Mistakes are explained, and what was typed stays on the form.
    wrong = await run.client.post("/console/compose", data={
        "csrf": csrf, "text_en": "Border news", "text_fr": "Nouvelles", "poll_question_en": "Leaving soon?",
        "poll_option_1_en": "yes", "poll_option_1_fr": "oui"})
    page = html.unescape(await wrong.text())
    assert wrong.status == 422
    assert "A poll needs at least two options." in page and "Write the question in Français too." in page
    assert 'value="Leaving soon?"' in page and 'value="oui"' in page
    twice = await run.client.post("/console/compose", data={
        "csrf": csrf, **FORM, "poll_option_2_en": "Yes!", "poll_option_2_fr": "autre", "poll_option_5_en": "maybe"})
    page = html.unescape(await twice.text())
    assert twice.status == 422 and "Options 1 and 2 read the same in English." in page
    assert "Option 5 has no Français text." in page
    stray = await run.client.post("/console/compose", data={"csrf": csrf, **FORM, "poll_option_5_es": "quizás"})
    assert "write the message in Español too" in html.unescape(await stray.text())

    preview = await run.client.post("/console/compose", data={"csrf": csrf, **FORM})
    page = await preview.text()
    assert preview.status == 200, page
    samples = bubbles(page)
    assert samples["fr"].startswith("Nouvelles de la frontière\nPrévoyez-vous de partir ?\n1 oui\n2 non\n3 pas sûr")
    assert "1 yes\n2 no\n3 not sure" in samples["ar"]  # no Arabic text: the English one, poll and all
    payload = html.unescape(re.search(r'name="payload" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    sent = await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload},
                                 allow_redirects=False)
    assert sent.status == 303
    broadcast_id = int(sent.headers["Location"].rsplit("/", 1)[1])
    responder = {"Authorization": f"Bearer {await tokens.create(run.beacon.db, 'responder', 'resp')}"}
    await until_sent(run, broadcast_id, responder)
    simulator = run.beacon.providers["simulator"]
    for phone, code in ((FR, "fr"), (EN, "en"), (AR, "ar")):
        assert simulator.sent[phone][-1] == samples[code]  # type: ignore[attr-defined]
    stored = await (await run.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=responder)).json()
    assert stored["poll"]["options"][2] == {"en": "not sure", "fr": "pas sûr"}
    assert stored["created_by"] == "user:amal"

    assert "yes" in " ".join(await run.simulate(EN, "1"))
    await run.simulate(FR, "OUI")
    await run.simulate(AR, "١")  # Arabic-Indic one
    await run.simulate(EN2, "2")
    got = await (await run.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=responder)).json()
    assert got["counts"]["poll"] == {"1": 3, "2": 1, "3": 0}  # the raw tally: the console never shows it

    analyst = {"Authorization": f"Bearer {await tokens.create(run.beacon.db, 'analyst', 'ana')}"}
    table = await (await run.client.get(f"/api/v1/stats/polls/{broadcast_id}", headers=analyst)).json()
    published: dict[str, Any] = {f"poll_{t['answer']}": t["count"] for t in table["totals"]
                                 if "answer" in t and "area" not in t}
    expected = {key: published.get(key, 0) for key in ("poll_1", "poll_2", "poll_3", "poll_no_reply")}
    assert expected["poll_2"] is None and expected["poll_no_reply"] is None  # 1 and 2 people: withheld

    page = await (await run.client.get(f"/console/broadcasts/{broadcast_id}")).text()
    assert "Do you plan to leave?" in page
    assert shown_counts(page) == {key: "withheld" if value is None else str(value) for key, value in expected.items()}
    live = await (await run.client.get(f"/console/broadcasts/{broadcast_id}/tallies",
                                       headers={"Accept": "application/json"})).json()
    assert "poll" not in live["counts"]
    assert {key: live["counts"][key] for key in expected} == expected
    auditor = {"Authorization": f"Bearer {await tokens.create(run.beacon.db, 'auditor', 'aud')}"}
    reads = (await (await run.client.get("/api/v1/audit?action=stats.read&actor=user:amal",
                                         headers=auditor)).json())["items"]
    assert reads and str(broadcast_id) in str(reads[0]["detail"])  # the page view, audited as the API's read is


async def test_check_in_and_poll_preview_says_the_poll_follows(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await run.converse(EN, "JOIN", "en", "1", "tripoli", "0", "0", "0", "0", "0", "0")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    form = {k: v for k, v in FORM.items() if not k.endswith("_fr")}
    page = await (await run.client.post("/console/compose", data={"csrf": csrf, **form, "check_in": "on"})).text()
    assert "After their check-in answer, they are asked:" in page
    assert "1 yes" not in bubbles(page)["en"]  # the check-in question first; the poll after its answer
    back = await run.client.post("/console/compose/edit", data={
        "csrf": csrf, "payload": html.unescape(re.search(r'name="payload" value="([^"]+)"', page).group(1))})  # type: ignore[union-attr]
    kept = await back.text()
    assert 'value="Do you plan to leave?"' in kept and 'value="not sure"' in kept  # option rows renumbered
