"""The situation report as people see it: rendered by headless Chromium, read back from the screen.

Registrants are seeded straight into the database (sealed as registration seals them) across several
areas, nationalities, genders, age bands and languages, so that some cells are published and some
are withheld; a check-in broadcast to two areas gets a few answers. The numbers read from the
rendered page must be exactly the ones ``/api/v1/stats`` publishes for the same breakdown, a
withheld cell must show no number anywhere (text, SVG tooltips, attributes, hidden text), the page
must load nothing from another host, fit a phone screen and print.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text

from registry import tokens
from tests.browser import artifact, browser  # noqa: F401
from tests.conftest import Running, StartBeacon
from tests.seeding import phone, seed_profiles

MIN_CELL = 5
# area -> how many people registered there (tajoura and tripoli-centre count into tripoli at level 0)
AREAS = {"tripoli": 20, "tajoura": 6, "tripoli-centre": 4, "misrata": 14, "benghazi": 9, "sabha": 3, "zawiya": 2}
TOP = {"tajoura": "tripoli", "tripoli-centre": "tripoli"}
SIZE = sum(AREAS.values())  # 58
NATIONALITIES = {"NG": 22, "GH": 12, "SD": 9, "NE": 7, "ML": 3, "ER": 3, "ET": 2}
GENDERS = {"female": 26, "male": 25, "other": 2, None: 5}
AGE_BANDS = {"18-29": 20, "30-44": 18, "45-59": 9, "0-17": 4, "60+": 3, None: 4}
LANGUAGES = {"en": 30, "ar": 18, "fr": 7, "sw": 3}
# The labels the page shows for each published value (written out here, not taken from the code under test).
AREA_NAMES = {"tripoli": "Tripoli", "misrata": "Misrata", "benghazi": "Benghazi", "sabha": "Sabha",
              "zawiya": "Zawiya"}
COUNTRIES = {"NG": "Nigeria", "GH": "Ghana", "SD": "Sudan", "NE": "Niger", "ML": "Mali", "ER": "Eritrea",
             "ET": "Ethiopia"}
LANGUAGE_NAMES = {"en": "English", "ar": "Arabic", "fr": "French", "sw": "Swahili"}
STATUS_NAMES = {"safe": "Safe", "need_help": "Needs help", "no_reply": "No reply"}
CHARTS = {"area": "Registered people by area", "nationality": "Nationality", "gender": "Gender",
          "age_band": "Age band", "language": "Language"}
# Check-in answers to the broadcast sent to tripoli and misrata: area -> (safe, need help)
ANSWERS = {"tripoli": (12, 2), "misrata": (6, 1)}


def spread(counts: dict[Any, int], rng: random.Random) -> list[Any]:
    values = [value for value, n in counts.items() for _ in range(n)]
    assert len(values) == SIZE
    rng.shuffle(values)
    return values


def population() -> list[dict[str, Any]]:
    rng = random.Random(20240611)
    areas = [area for area, n in AREAS.items() for _ in range(n)]
    columns = zip(areas, spread(NATIONALITIES, rng), spread(GENDERS, rng), spread(AGE_BANDS, rng),
                  spread(LANGUAGES, rng), strict=True)
    return [{"area_id": a, "nationality": n, "gender": g, "age_band": b, "language": lang, "first_name": f"P{k}"}
            for k, (a, n, g, b, lang) in enumerate(columns, start=1)]


def label(dim: str, value: str) -> str:
    if dim == "area":
        return AREA_NAMES[value]
    if value == "unknown":
        return "Not given"
    return {"nationality": lambda v: f"{COUNTRIES[v]} ({v})", "gender": str.capitalize,
            "age_band": lambda v: v, "language": lambda v: f"{LANGUAGE_NAMES[v]} ({v})",
            "status": STATUS_NAMES.__getitem__}[dim](value)


def shown(count: int | None) -> str:
    return "withheld" if count is None else f"{count:,}"


async def bearer(beacon: Running, role: str, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, role, name)}"}


async def get_json(beacon: Running, path: str, headers: dict[str, str]) -> Any:
    response = await beacon.client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def check_in(beacon: Running, people: list[dict[str, Any]]) -> int:
    """A check-in broadcast to tripoli and misrata, sent; some answer safe, a few need help."""
    responder = await bearer(beacon, "responder", "resp")
    created = await beacon.client.post("/api/v1/broadcasts", headers=responder, json={
        "text": {"en": "Flooding: are you safe? Reply 1 safe, 2 need help."},
        "audience": {"areas": list(ANSWERS)}, "check_in": True})
    assert created.status == 201, await created.text()
    broadcast_id = int((await created.json())["id"])
    expected = sum(n for area, n in AREAS.items() if TOP.get(area, area) in ANSWERS)
    for _ in range(400):
        summary = await get_json(beacon, f"/api/v1/broadcasts/{broadcast_id}", responder)
        if summary["counts"]["sent"] == expected:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"broadcast not sent: {summary}")
    for area, (safe, need) in ANSWERS.items():
        ids = [k for k, p in enumerate(people, start=1) if TOP.get(p["area_id"], p["area_id"]) == area]
        answers = ["1"] * safe + ["2"] * need
        await asyncio.gather(*(beacon.simulate(phone(n), word) for n, word in zip(ids, answers, strict=False)))
    return broadcast_id


async def truth(beacon: Running, broadcast_id: int) -> dict[str, Counter[tuple[str, ...]]]:
    """The true counts, straight from the database (never published: used to look for leaks)."""
    found: dict[str, Counter[tuple[str, ...]]] = {}
    async with beacon.beacon.db.read() as conn:
        for dim in ("area", "nationality", "gender", "age_band", "language"):
            column = "area_id" if dim == "area" else dim
            rows = (await conn.execute(text(
                f"SELECT {column}, count(*) FROM registrants WHERE consented AND area_id IS NOT NULL "
                f"GROUP BY {column}"))).all()
            counts: Counter[tuple[str, ...]] = Counter()
            for value, n in rows:
                value = TOP.get(value, value) if dim == "area" else (value or "unknown")
                counts[(value,)] += n
            found[dim] = counts
        rows = (await conn.execute(text(
            "SELECT r.area_id, c.answer FROM broadcast_recipients c JOIN registrants r ON r.id = c.registrant_id "
            "WHERE c.broadcast_id = :b"), {"b": broadcast_id})).all()
    status: Counter[tuple[str, ...]] = Counter()
    area_status: Counter[tuple[str, ...]] = Counter()
    for area, answer in rows:
        answer = answer if answer in ("safe", "need_help") else "no_reply"
        status[(answer,)] += 1
        area_status[(TOP.get(area, area), answer)] += 1
        area_status[(TOP.get(area, area), "total")] += 1
    found["status"], found["area_status"] = status, area_status
    return found


# What the page shows, read from the rendered DOM: texts as laid out (innerText), and for the leak check
# every attribute and text node (including SVG <title> and anything hidden) of each labelled element.
READ_PAGE = """() => {
  const txt = (el) => (el ? el.innerText.trim() : null);
  const charts = [...document.querySelectorAll("section.chart")].map((s) => ({
    title: txt(s.querySelector("h3")),
    rows: [...s.querySelectorAll("tr")].map((tr) => ({
      label: txt(tr.querySelector("th")), value: txt(tr.querySelector("td.num")),
      sum: tr.classList.contains("sum"), html: tr.outerHTML})),
  }));
  const svg = document.querySelector("svg.map");
  const circles = svg ? [...svg.querySelectorAll("circle")].map((c) => ({
    cls: c.getAttribute("class"), r: c.getAttribute("r"), title: c.querySelector("title")?.textContent,
    html: c.outerHTML})) : [];
  const texts = svg ? [...svg.querySelectorAll("text")] : [];
  const labels = texts.filter((t) => t.classList.contains("label")).map((t) => {
    const value = t.nextElementSibling;
    return {label: t.textContent, value: value && value.classList.contains("value") ? value.textContent : null,
            html: t.outerHTML + (value ? value.outerHTML : "")};
  });
  const grid = [...document.querySelectorAll("table.grid tr")].map((tr) => ({
    cells: [...tr.children].map((c) => c.innerText.trim()), html: tr.outerHTML}));
  return {total: txt(document.querySelector("#total")), charts, circles, labels, grid,
          title: document.title, svgBox: svg ? svg.getBoundingClientRect().toJSON() : null,
          scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth};
}"""

# Each area's name and number on the map, as one box: no two areas' boxes overlap, all inside the map;
# and the height of the smallest line of text, in CSS pixels.
PLACEMENT = """() => {
  const map = document.querySelector("svg.map").getBoundingClientRect();
  const boxes = [...document.querySelectorAll("svg.map text.label")].map((t) => {
    const a = t.getBoundingClientRect(), b = t.nextElementSibling.getBoundingClientRect();
    return {name: t.textContent, left: Math.min(a.left, b.left), right: Math.max(a.right, b.right),
            top: Math.min(a.top, b.top), bottom: Math.max(a.bottom, b.bottom), height: Math.min(a.height, b.height)};
  });
  const overlaps = [], outside = [];
  boxes.forEach((a, i) => {
    if (a.left < map.left || a.right > map.right || a.top < map.top || a.bottom > map.bottom) {
      outside.push(a.name);
    }
    boxes.slice(i + 1).forEach((b) => {
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
        overlaps.push([a.name, b.name]);
      }
    });
  });
  return {overlaps, outside, smallest: Math.min(...boxes.map((b) => b.height))};
}"""

GEOMETRY = re.compile(r'\s(?:cx|cy|r|x|y|width|height|viewBox)="[^"]*"')


def numbers_in(fragment: str) -> set[str]:
    """Every number in an HTML fragment, its geometry attributes left out (they place, not count)."""
    return set(re.findall(r"\d[\d,]*(?:\.\d+)?", GEOMETRY.sub(" ", fragment)))


def assert_no_count(fragment: str, count: int, where: str) -> None:
    found = numbers_in(fragment)
    assert str(count) not in found and f"{count:,}" not in found, f"{where} gives away {count}: {fragment}"


def area_rows(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["area"]: c for c in body["cells"]}


@pytest.mark.browser
async def test_situation_report_in_chromium(start_beacon: StartBeacon, browser: Any) -> None:  # noqa: F811
    beacon = await start_beacon(BEACON_MIN_CELL=str(MIN_CELL))
    people = population()
    await seed_profiles(beacon.beacon.db, beacon.beacon.keys, people, channel="simulator")
    broadcast_id = await check_in(beacon, people)
    analyst = await bearer(beacon, "analyst", "ana")

    published = {dim: await get_json(beacon, f"/api/v1/stats?by={dim}", analyst) for dim in CHARTS}
    by_status = await get_json(beacon, f"/api/v1/stats?by=status&broadcast={broadcast_id}", analyst)
    by_area_status = await get_json(beacon, f"/api/v1/stats?by=area,status&broadcast={broadcast_id}", analyst)
    real = await truth(beacon, broadcast_id)
    # The population was made so that both published and withheld cells are on the page.
    for dim, body in published.items():
        assert sum(c["count"] or 0 for c in body["cells"]) > 0, dim
    assert any(c["suppressed"] for c in published["area"]["cells"])
    assert any(c["suppressed"] for c in published["nationality"]["cells"])
    assert any(c["suppressed"] for c in by_area_status["cells"])
    assert not all(c["suppressed"] for c in by_area_status["cells"])
    # ... and the API itself shows the truth wherever it shows a number.
    for dim, body in published.items():
        for cell in body["cells"]:
            assert cell["suppressed"] == (cell["count"] is None)
            assert cell["count"] in (None, real[dim][(cell[dim],)]), (dim, cell)

    base = str(beacon.client.make_url("/")).rstrip("/")
    url = f"{base}/api/v1/reports/situation"
    context = await browser.new_context(extra_http_headers=analyst, viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    page = await context.new_page()
    page.on("request", lambda request: requested.append(request.url))
    response = await page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200
    seen = await page.evaluate(READ_PAGE)
    await page.screenshot(path=str(artifact("situation-1280.png")), full_page=True)

    # -- the numbers as rendered equal the published ones --
    assert seen["title"].startswith("Situation report")
    charts = {c["title"]: c["rows"] for c in seen["charts"]}
    grand_hidden = any(body["total"]["suppressed"] for body in published.values())
    grand = None if grand_hidden else published["area"]["total"]["count"]
    assert seen["total"] == shown(grand)
    for dim, title in CHARTS.items():
        rows = charts[title]
        cells = {label(dim, c[dim]): c["count"] for c in published[dim]["cells"]}
        drawn = {r["label"]: r["value"] for r in rows if not r["sum"]}
        assert drawn == {name: shown(count) for name, count in cells.items()}, title
        (total_row,) = [r for r in rows if r["sum"]]
        assert total_row["label"] == "Total" and total_row["value"] == shown(grand)
    answers = {label("status", c["status"]): c["count"] for c in by_status["cells"]}
    drawn = {r["label"]: r["value"] for r in charts["Recipients by answer"] if not r["sum"]}
    assert drawn == {STATUS_NAMES[s]: shown(answers.get(STATUS_NAMES[s], 0)) for s in STATUS_NAMES}
    (total_row,) = [r for r in charts["Recipients by answer"] if r["sum"]]
    assert total_row["value"] == shown(by_status["total"]["count"])

    # the map: one circle and one label per area, the same numbers; a withheld area's circle says nothing
    areas = area_rows(published["area"])
    assert {m["label"]: m["value"] for m in seen["labels"]} == {
        AREA_NAMES[a]: shown(c["count"]) for a, c in areas.items()}
    titles = {c["title"] for c in seen["circles"]}
    assert titles == {f"{AREA_NAMES[a]}: {'withheld' if c['suppressed'] else c['count']}" for a, c in areas.items()}
    withheld_radii = {c["r"] for c in seen["circles"] if c["cls"] == "withheld"}
    assert len(withheld_radii) == 1, "a withheld area's circle size must not depend on its count"
    assert sum(c["cls"] == "withheld" for c in seen["circles"]) == sum(c["suppressed"] for c in areas.values())

    # the check-in table: one row per area, total and each answer as /api/v1/stats?by=area,status gives them
    header, *grid_rows = seen["grid"]
    assert header["cells"] == ["Area", "Total", "Safe", "Needs help", "No reply"]
    cells = {(c["area"], c["status"]): c["count"] for c in by_area_status["cells"]}
    totals = {t["area"]: t["count"] for t in by_area_status["totals"] if "area" in t and "status" not in t}
    expected_grid = []
    for area in sorted({c["area"] for c in by_area_status["cells"]}):
        values = [shown(totals.get(area))]
        values += ["0" if (area, s) not in cells else shown(cells[area, s]) for s in STATUS_NAMES]
        expected_grid.append([AREA_NAMES[area], *values])
    assert [r["cells"] for r in grid_rows] == expected_grid
    assert {r["cells"][0] for r in grid_rows} == {AREA_NAMES[a] for a in ANSWERS}

    # -- a withheld cell shows no number anywhere: its bar row, its map circle and label, hidden text --
    leaks_checked = 0
    for dim, title in CHARTS.items():
        rows = {r["label"]: r for r in charts[title] if not r["sum"]}
        for cell in published[dim]["cells"]:
            if cell["suppressed"]:
                row = rows[label(dim, cell[dim])]
                assert row["value"] == "withheld" and 'class="bar withheld"' in row["html"]
                assert_no_count(row["html"], real[dim][(cell[dim],)], f"{title} row {row['label']}")
                leaks_checked += 1
    for area, cell in areas.items():
        if cell["suppressed"]:
            count = real["area"][(area,)]
            (circle,) = [c for c in seen["circles"] if c["title"].startswith(AREA_NAMES[area] + ":")]
            assert_no_count(circle["html"], count, f"map circle {area}")
            (mark,) = [m for m in seen["labels"] if m["label"] == AREA_NAMES[area]]
            assert_no_count(mark["html"], count, f"map label {area}")
    for row in grid_rows:
        area = next(a for a, name in AREA_NAMES.items() if name == row["cells"][0])
        for position, status in enumerate(("total", *STATUS_NAMES), start=1):
            if row["cells"][position] == "withheld":
                count = real["area_status"][(area, status)]
                tds = re.findall(r"<td>.*?</td>", row["html"])
                assert_no_count(tds[position - 1], count, f"check-in {area} {status}")
                leaks_checked += 1
    for s, name in STATUS_NAMES.items():
        row = next(r for r in charts["Recipients by answer"] if r["label"] == name)
        if row["value"] == "withheld":
            assert_no_count(row["html"], real["status"][(s,)], f"answers row {name}")
    assert leaks_checked >= 4
    # Nothing hidden: no element of the page is invisible yet holds a number, and no data-* attribute.
    content = await page.content()
    assert not re.search(r"\sdata-[\w-]+=", content)
    hidden = await page.evaluate("""() => [...document.body.querySelectorAll("*")].filter((el) => {
        const style = getComputedStyle(el);
        return (style.display === "none" || style.visibility === "hidden" || el.hidden)
            && /\\d/.test(el.textContent);
      }).map((el) => el.outerHTML)""")
    assert hidden == []
    for area, cell in areas.items():
        if cell["suppressed"]:
            name = AREA_NAMES[area]
            count = real["area"][(area,)]
            # every place the name is written, up to the end of its element or row
            for match in re.finditer(re.escape(name), content):
                end = min(i for i in (content.find("</tr>", match.end()), content.find("</title>", match.end()),
                                      content.find("</text>", content.find("</text>", match.end()) + 1))
                          if i != -1)
                assert_no_count(content[match.start():end], count, f"page text around {name}")

    # -- nothing from any other host: one request, to this server --
    assert requested and all(u.startswith(base + "/") for u in requested), requested

    # -- it prints --
    pdf = await page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    artifact("situation.pdf").write_bytes(pdf)
    await page.emulate_media(media="print")  # the printed layout, at the width of A4 inside its margins
    await page.set_viewport_size({"width": 688, "height": 980})
    printed = await page.evaluate(READ_PAGE)
    await page.screenshot(path=str(artifact("situation-print.png")), full_page=True)
    assert printed["scrollWidth"] <= 688 and printed["svgBox"]["right"] <= 688
    await page.emulate_media(media="screen")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # -- the map is on screen and nothing overflows, wide and on a phone --
    assert seen["scrollWidth"] <= seen["innerWidth"]
    assert 0 <= seen["svgBox"]["x"] and seen["svgBox"]["right"] <= 1280 and seen["svgBox"]["width"] > 300
    wide = await page.evaluate(PLACEMENT)
    assert wide["overlaps"] == [] and wide["outside"] == [] and wide["smallest"] >= 11, wide
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=str(artifact("situation-390.png")), full_page=True)
    narrow = await page.evaluate(READ_PAGE)
    assert narrow["scrollWidth"] <= 390, "the page scrolls sideways on a phone"
    assert 0 <= narrow["svgBox"]["x"] and narrow["svgBox"]["right"] <= 390 and narrow["svgBox"]["width"] > 300
    placement = await page.evaluate(PLACEMENT)
    assert placement["overlaps"] == [] and placement["outside"] == [], placement
    assert placement["smallest"] >= 11, f"map labels too small to read on a phone: {placement}"
    await context.close()

    # -- who may open it: analyst and responder (READERS) and admin; not an auditor, not without a token --
    for role, status in (("responder", 200), ("admin", 200), ("auditor", 403), (None, 401)):
        headers = await bearer(beacon, role, f"{role}-page") if role else {}
        other = await browser.new_context(extra_http_headers=headers)
        tab = await other.new_page()
        answer = await tab.goto(url)
        assert answer is not None and answer.status == status, (role, answer and answer.status)
        if status == 200:
            assert await tab.inner_text("#total") == shown(grand)
        else:
            assert "withheld" not in await tab.content()
        await other.close()
