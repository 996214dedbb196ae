"""CAP drafts reviewed in the console: listed as drafts with the alert's headline, areas and sender, shown with
their texts, areas and recipients, sent by a responder who confirms (the API's send, audited), discarded, or
withdrawn by the sender's Cancel so that they can no longer be sent; other roles are refused."""

from __future__ import annotations

import asyncio
import html
import re

from sqlalchemy import select

from registry import schema, tokens, users
from tests.conftest import Running, StartBeacon
from tests.helpers import eventually
from tests.test_cap_e2e import SENT, alert, post
from tests.test_console import HTTP, PASSWORD, csrf_of, sign_in

TRIPOLI, MISRATA = "+2348070000001", "+2348070000002"
REFERENCE = "met@example.gov.ly,{identifier}," + SENT


async def status_of(run: Running, broadcast_id: int) -> str:
    async with run.beacon.db.read() as conn:
        b = schema.broadcasts.c
        return str((await conn.execute(select(b.status).where(b.id == broadcast_id))).scalar_one())


async def actions(run: Running, subject: int) -> list[tuple[str, str]]:
    async with run.beacon.db.read() as conn:
        a = schema.audit_log.c
        rows = (await conn.execute(select(a.action, a.actor).where(a.subject == str(subject)).order_by(a.seq))).all()
    return [(row.action, row.actor) for row in rows]


def draft_rows(page: str) -> dict[int, str]:
    return {int(i): html.unescape(row) for i, row in re.findall(r'<tr class="draft-row" data-id="(\d+)">(.*?)</tr>',
                                                                page, re.S)}


async def test_a_cap_draft_is_reviewed_sent_withdrawn_and_discarded(start_beacon: StartBeacon,
                                                                    database_url: str) -> None:
    run = await start_beacon(**HTTP, BEACON_DATABASE_URL=database_url)
    await run.converse(TRIPOLI, "JOIN", "en", "1", "tripoli", "0", "0", "0", "0", "0", "0")
    await run.converse(MISRATA, "JOIN", "en", "1", "misrata", "0", "0", "0", "0", "0", "0")
    feed = {"Authorization": f"Bearer {await tokens.create(run.beacon.db, 'responder', 'cap-feed')}"}
    first = (await post(run, feed, alert("FLOOD-1"), 201))["broadcast_id"]
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")

    listed = await (await run.client.get("/console/broadcasts")).text()
    row = draft_rows(listed)[first]
    assert "draft" in row and "Flood warning for Tripoli" in row and "Tripoli" in row
    assert "met@example.gov.ly" in row
    page = html.unescape(await (await run.client.get(f"/console/broadcasts/{first}")).text())
    assert "Flood warning for Tripoli\nMove to higher ground now." in page
    assert "انتقلوا إلى مكان مرتفع الآن." in page  # the Arabic text, shown beside the English one
    assert re.search(r'id="recipients">1<', page) and "Send to 1 person" in page and 'id="send-draft"' in page

    unconfirmed = await run.client.post(f"/console/broadcasts/{first}/send", data={"csrf": csrf})
    assert unconfirmed.status == 422 and await status_of(run, first) == "draft"
    forged = await run.client.post(f"/console/broadcasts/{first}/send", data={"csrf": "forged", "confirm": "on"})
    assert forged.status == 403 and await status_of(run, first) == "draft"
    sent = await run.client.post(f"/console/broadcasts/{first}/send", data={"csrf": csrf, "confirm": "on"},
                                 allow_redirects=False)
    assert sent.status == 303 and sent.headers["Location"] == f"/console/broadcasts/{first}"
    simulator = run.beacon.providers["simulator"]
    await eventually(lambda: any("Move to higher ground" in m for m in simulator.sent.get(TRIPOLI, [])),  # type: ignore[attr-defined]
                     timeout=30, what="the broadcast")
    assert not any("Move to higher ground" in m for m in simulator.sent.get(MISRATA, []))  # type: ignore[attr-defined]
    assert ("broadcast.approved", "user:amal") in await actions(run, first)
    assert first not in draft_rows(await (await run.client.get("/console/broadcasts")).text())
    again = await run.client.post(f"/console/broadcasts/{first}/send", data={"csrf": csrf, "confirm": "on"})
    assert again.status == 409

    # An Update changes the draft; a Cancel withdraws it: no Send button, and a send is refused.
    second = (await post(run, feed, alert("FLOOD-2"), 201))["broadcast_id"]
    await post(run, feed, alert("FLOOD-2-U", msg_type="Update", headline="Flood now severe",
                                references=REFERENCE.format(identifier="FLOOD-2")), 200)
    row = draft_rows(await (await run.client.get("/console/broadcasts")).text())[second]
    assert "Flood now severe" in row and "changed by an update" in row
    await post(run, feed, alert("FLOOD-2-C", msg_type="Cancel", references=REFERENCE.format(identifier="FLOOD-2")),
               200)
    row = draft_rows(await (await run.client.get("/console/broadcasts")).text())[second]
    assert "withdrawn by the sender" in row
    page = await (await run.client.get(f"/console/broadcasts/{second}")).text()
    assert 'id="withdrawn"' in page and 'id="send-draft"' not in page and 'id="discard-draft"' not in page
    refused = await run.client.post(f"/console/broadcasts/{second}/send", data={"csrf": csrf, "confirm": "on"})
    assert refused.status == 409 and "withdrew this alert" in await refused.text()
    assert await status_of(run, second) == "withdrawn"

    # Discard throws a draft away, audited; it can no longer be sent.
    third = (await post(run, feed, alert("FLOOD-3"), 201))["broadcast_id"]
    discarded = await run.client.post(f"/console/broadcasts/{third}/discard", data={"csrf": csrf},
                                      allow_redirects=False)
    assert discarded.status == 303 and await status_of(run, third) == "cancelled"
    assert ("broadcast.discarded", "user:amal") in await actions(run, third)
    assert third not in draft_rows(await (await run.client.get("/console/broadcasts")).text())
    late = await run.client.post(f"/console/broadcasts/{third}/send", data={"csrf": csrf, "confirm": "on"})
    assert late.status == 409 and await status_of(run, third) == "cancelled"
    assert sum("Move to higher ground" in m for m in simulator.sent[TRIPOLI]) == 1  # type: ignore[attr-defined]

    # Edited in the compose form: the draft is discarded and the edited text sent in its place, once.
    edited = (await post(run, feed, alert("FLOOD-5"), 201))["broadcast_id"]
    form = html.unescape(await (await run.client.get(f"/console/compose?draft={edited}")).text())
    assert "Flood warning for Tripoli\nMove to higher ground now." in form and 'name="replaces"' in form
    assert re.search(r'name="areas" value="tripoli" checked', form)
    preview = await run.client.post("/console/compose", data={
        "csrf": csrf, "replaces": str(edited), "areas": "tripoli", "text_en": "Flood: go to the mosque on the hill",
        "text_ar": "فيضان: توجهوا إلى المسجد على التل"})
    page = await preview.text()
    assert preview.status == 200 and 'id="replaces"' in page
    payload = html.unescape(re.search(r'name="payload" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    for _ in range(2):  # sent twice (a double click): one broadcast
        replaced = await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload},
                                         allow_redirects=False)
        assert replaced.status == 303
    new_id = int(replaced.headers["Location"].rsplit("/", 1)[1])
    assert new_id != edited and await status_of(run, edited) == "cancelled"
    assert ("broadcast.discarded", "user:amal") in await actions(run, edited)
    for _ in range(100):
        if any("mosque on the hill" in m for m in simulator.sent[TRIPOLI]):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert sum("mosque on the hill" in m for m in simulator.sent[TRIPOLI]) == 1  # type: ignore[attr-defined]
    assert (await run.client.get(f"/console/compose?draft={second}")).status == 409  # withdrawn: not editable
    gone = (await post(run, feed, alert("FLOOD-6"), 201))["broadcast_id"]
    page = await (await run.client.post("/console/compose", data={
        "csrf": csrf, "replaces": str(gone), "areas": "tripoli", "text_en": "Edited"})).text()
    await post(run, feed, alert("FLOOD-6-C", msg_type="Cancel", references=REFERENCE.format(identifier="FLOOD-6")),
               200)
    payload = html.unescape(re.search(r'name="payload" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    late = await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload})
    assert late.status == 422 and "nothing was sent" in await late.text()
    assert await status_of(run, gone) == "withdrawn"

    # Roles that may not compose a broadcast see no draft and send nothing.
    fourth = (await post(run, feed, alert("FLOOD-4"), 201))["broadcast_id"]
    await users.create_user(run.beacon.db, "nadia", "analyst", PASSWORD)
    run.client.session.cookie_jar.clear()
    await sign_in(run, "nadia")
    overview = await (await run.client.get("/console/overview")).text()
    assert (await run.client.get(f"/console/broadcasts/{fourth}")).status == 403
    for action in ("send", "discard"):
        response = await run.client.post(f"/console/broadcasts/{fourth}/{action}",
                                         data={"csrf": csrf_of(overview), "confirm": "on"})
        assert response.status == 403
    assert await status_of(run, fourth) == "draft"
