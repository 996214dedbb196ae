"""CAP 1.2 alerts end to end: an alert for Tripoli (by P-code, or by a polygon around its coordinates)
makes a draft broadcast for that area that nothing sends by itself; Update changes the draft, Cancel
withdraws it; once a responder has sent it, a later update is only shown beside it."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from campaigns import cap
from campaigns.cap_feed import CapFeed
from domain.areas import Gazetteer
from registry import tokens
from tests.conftest import Running, StartBeacon
from tests.helpers import eventually

PHONE = "+2348050000001"
SENT = "2026-12-05T08:00:00+00:00"
TRIPOLI_POLYGON = "32.7,13.0 32.7,13.4 33.0,13.4 33.0,13.0 32.7,13.0"


def alert(identifier: str, *, msg_type: str = "Alert", area: str = "", references: str = "",
          headline: str = "Flood warning for Tripoli") -> str:
    refs = f"<references>{references}</references>" if references else ""
    area = area or "<geocode><valueName>PCODE</valueName><value>LY0106</value></geocode>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>met@example.gov.ly</sender>
  <sent>{SENT}</sent><status>Actual</status><msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info><language>en-US</language><category>Met</category><event>Flood</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><headline>{headline}</headline>
    <instruction>Move to higher ground now.</instruction>
    <area><areaDesc>Tripoli</areaDesc>{area}</area></info>
  <info><language>ar</language><category>Met</category><event>فيضان</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><headline>تحذير من فيضان في طرابلس</headline>
    <instruction>انتقلوا إلى مكان مرتفع الآن.</instruction>
    <area><areaDesc>طرابلس</areaDesc>{area}</area></info>
</alert>"""


async def post(beacon: Running, headers: dict[str, str], document: str, status: int) -> dict[str, Any]:
    response = await beacon.client.post("/api/v1/cap", data=document.encode(),
                                        headers={**headers, "Content-Type": "application/cap+xml"})
    assert response.status == status, await response.text()
    return dict(await response.json())


async def broadcast(beacon: Running, headers: dict[str, str], broadcast_id: int) -> dict[str, Any]:
    return dict(await (await beacon.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=headers)).json())


async def test_cap_alert_drafts_for_tripoli_and_cancel_withdraws(start_beacon: StartBeacon, database_url: str) -> None:
    beacon = await start_beacon(BEACON_DATABASE_URL=database_url)
    await beacon.converse(PHONE, "JOIN", "1", "1", "tripoli", "0", "0", "0", "0", "0", "0")
    responder = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'responder', 'resp')}"}

    made = await post(beacon, responder, alert("FLOOD-1"), 201)
    assert made["outcome"] == "drafted"
    draft = await broadcast(beacon, responder, made["broadcast_id"])
    assert draft["status"] == "draft" and draft["audience"]["areas"] == ["tripoli"]
    assert draft["texts"]["en"] == "Flood warning for Tripoli\nMove to higher ground now."
    assert draft["texts"]["ar"].startswith("تحذير من فيضان")
    assert await beacon.beacon.runner.run_due() == 0  # a draft is never sent by itself
    assert (await post(beacon, responder, alert("FLOOD-1"), 200))["outcome"] == "duplicate"

    cancel = await post(beacon, responder, alert("FLOOD-1-C", msg_type="Cancel",
                                                 references="met@example.gov.ly,FLOOD-1," + SENT), 200)
    assert cancel == {"outcome": "withdrawn", "broadcast_id": made["broadcast_id"], "identifier": "FLOOD-1-C",
                      "msg_type": "Cancel"}
    withdrawn = await broadcast(beacon, responder, made["broadcast_id"])
    assert withdrawn["status"] == "withdrawn" and [c["outcome"] for c in withdrawn["cap"]] == ["drafted", "withdrawn"]
    again = await beacon.client.post(f"/api/v1/broadcasts/{made['broadcast_id']}/send", headers=responder)
    assert again.status == 409

    # The polygon variant: Tripoli's coordinates are inside it (so are Tajoura's, which is within Tripoli).
    shaped = await post(beacon, responder, alert("FLOOD-2", area=f"<polygon>{TRIPOLI_POLYGON}</polygon>"), 201)
    assert (await broadcast(beacon, responder, shaped["broadcast_id"]))["audience"]["areas"] == ["tripoli"]
    updated = await post(beacon, responder, alert("FLOOD-2-U", msg_type="Update", headline="Flood now severe",
                                                  references="met@example.gov.ly,FLOOD-2," + SENT),
                         200)
    assert updated["outcome"] == "updated"
    assert (await broadcast(beacon, responder, shaped["broadcast_id"]))["texts"]["en"].startswith("Flood now severe")

    sent = await beacon.client.post(f"/api/v1/broadcasts/{shaped['broadcast_id']}/send", headers=responder)
    assert sent.status == 200, await sent.text()
    simulator = beacon.beacon.providers["simulator"]
    await eventually(lambda: any("Flood now severe" in m for m in simulator.sent.get(PHONE, [])),  # type: ignore[attr-defined]
                     timeout=30, what="the broadcast")
    late = await post(beacon, responder, alert("FLOOD-2-U2", msg_type="Update", headline="Flood receding",
                                               references="met@example.gov.ly,FLOOD-2," + SENT), 200)
    assert late["outcome"] == "noted"  # already sent: not touched, but shown beside it
    after = await broadcast(beacon, responder, shaped["broadcast_id"])
    assert after["texts"]["en"].startswith("Flood now severe")
    assert [c["outcome"] for c in after["cap"]] == ["drafted", "updated", "noted"]

    auditor = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'auditor', 'aud')}"}
    actions = [e["action"] for e in (await (await beacon.client.get("/api/v1/audit?action=cap.received",
                                                                     headers=auditor)).json())["items"]]
    assert len(actions) == 5


async def test_bad_cap_documents_get_400_with_the_reason(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    responder = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'responder', 'resp')}"}
    bad = await post(beacon, responder, "<alert><identifier>x</alert>", 400)
    assert bad["error"] == "bad_cap" and "not well-formed XML" in bad["message"]
    old = await post(beacon, responder, alert("X").replace("cap:1.2", "cap:1.1"), 400)
    assert "CAP 1.2" in old["message"]
    bomb = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]>'
            '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&e;</alert>')
    assert (await post(beacon, responder, bomb, 400))["error"] == "bad_cap"
    nowhere = alert("Y", area="<geocode><valueName>PCODE</valueName><value>XX9999</value></geocode>")
    assert (await post(beacon, responder, nowhere, 200))["outcome"] == "no_area"
    analyst = {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, 'analyst', 'ana')}"}
    assert (await beacon.client.post("/api/v1/cap", data=alert("Z").encode(), headers=analyst)).status == 403


async def test_cap_feed_atom_entries_become_drafts_once(start_beacon: StartBeacon) -> None:
    documents = {"/alert.xml": alert("FEED-1"), "/feed.atom": """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Alerts</title><id>urn:feed</id>
  <entry><id>urn:1</id><title>Flood</title><link rel="alternate" type="application/cap+xml" href="{base}/alert.xml"/>
  </entry></feed>"""}

    async def serve(request: web.Request) -> web.Response:
        text = documents[request.path].replace("{base}", str(server.make_url("")).rstrip("/"))
        return web.Response(text=text, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        beacon = await start_beacon()
        feed = CapFeed(beacon.beacon.db, beacon.beacon.gazetteer, str(server.make_url("/feed.atom")))
        assert await feed.poll() == {"drafted": 1}
        assert await feed.poll() == {}  # the entry's alert was fetched already
        assert await CapFeed(beacon.beacon.db, beacon.beacon.gazetteer,
                             str(server.make_url("/feed.atom"))).poll() == {"duplicate": 1}  # another process
    finally:
        await server.close()


def test_a_circle_around_an_area_matches_it_and_areas_within_it_go_with_it() -> None:
    gazetteer = Gazetteer.load()
    near = cap.parse(alert("C", area="<circle>32.89,13.19 5</circle>"))
    assert cap.matching_areas(gazetteer, near) == ["tripoli"]  # Tripoli Centre, within it, goes with it
    misrata = cap.parse(alert("M", area="<circle>32.3754,15.0925 1</circle>"))
    assert cap.matching_areas(gazetteer, misrata) == ["misrata"]
    assert cap.matching_areas(gazetteer, cap.parse(alert("S", area="<circle>0,0 10</circle>"))) == []
