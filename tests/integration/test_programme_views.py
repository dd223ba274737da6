"""Economics, forecasts and both dashboards over a scripted programme on real PostgreSQL and
Kafka: hand-worked figures in the JSON, the pages rendered in headless Chromium with no
console errors, and the numbers on the pages equal to the JSON's.

Screenshots are kept as test artifacts in tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import asyncio
from csv import DictReader
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest

from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from tests.integration.test_statement_html import Cells, chromium, number, run_chromium

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AS_OF = "2026-11-30"
PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller, integrator]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "0.20",
     vesting: {{held_pct: "0.50", release_on: [onboarding_completed], within_days: 90}}}}
  - {{id: trail, kind: recurring, rates_by_year: {{"2": "0.05", "3": "0.07"}}}}
  - {{id: grow, kind: expansion, rate: "0.10"}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


async def _programme(client) -> dict[str, str]:
    plan_id = uid("plan")
    r = await client.put(f"/v1/plans/{plan_id}/versions/1",
                         content=PLAN.format(plan_id=plan_id).encode(),
                         headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    w = {"plan": plan_id, "p1": uid("P"), "p2": uid("P"), "c1": uid("C"), "c2": uid("C"),
         "c3": uid("C")}
    for p, type_ in ((w["p1"], "reseller"), (w["p2"], "integrator")):
        r = await client.put(f"/v1/partners/{p}", json={"type": type_, "plan_id": plan_id})
        assert r.status_code == 201, r.text
    p1, p2, c1, c2, c3 = w["p1"], w["p2"], w["c1"], w["c2"], w["c3"]
    await post_events(client, [
        # P1: 20% of 100,000 = 20,000, half held until onboarding by 2026-04-01
        cloud_event("deal.closed", deal(c1, [(p1, "1")], "100000.00", "2026-01-01"),
                    time_="2026-01-05T10:00:00Z"),
        # onboarded 45 days after the start: the 10,000 held is released
        cloud_event("milestone.achieved", {"customer_id": c1, "milestone": "onboarding_completed",
                                           "score": "9"}, time_="2026-02-15T10:00:00Z"),
        # 20% of 50,000 = 10,000, then churned in the clawback window: 10,000 clawed back
        cloud_event("deal.closed", deal(c2, [(p1, "1")], "50000.00", "2026-03-01"),
                    time_="2026-03-02T10:00:00Z"),
        cloud_event("subscription.churned", {"customer_id": c2, "effective_date": "2026-04-10",
                                             "reason": "budget"}, time_="2026-04-10T10:00:00Z"),
        # 10% of 20,000 = 2,000; the ARR is 120,000 from here
        cloud_event("subscription.expanded", {"customer_id": c1, "currency": "USD",
                                              "delta_arr": "20000.00",
                                              "effective_date": "2026-06-01"},
                    time_="2026-06-01T10:00:00Z"),
        # P2: 20% of 40,000 = 8,000, 4,000 held until 2026-11-30
        cloud_event("deal.closed", deal(c3, [(p2, "1")], "40000.00", "2026-09-01"),
                    time_="2026-09-02T10:00:00Z"),
    ])

    async def settled():
        b = (await client.get(f"/v1/partners/{p1}/balances")).json()["balances"]
        b2 = (await client.get(f"/v1/partners/{p2}/balances")).json()["balances"]
        # P1: 20,000 + 10,000 − 10,000 clawed back + 2,000, all payable by now
        return b and b2 and b[0]["clawed_back"] == "10000.00" and \
            sum(Decimal(b[0][k]) for k in ("pending", "payable", "in_payout", "paid")) == 22000
    await eventually(settled)
    return w


@pytest.fixture
async def world(client):
    return await _programme(client)


async def test_economics_by_type_by_hand(client, world):
    r = await client.get("/v1/programme/economics", params={
        "from": "2026-01-01", "to": AS_OF, "group_by": "type", "plan_id": world["plan"]})
    assert r.status_code == 200, r.text
    groups = {g["key"]["type"]: g for g in r.json()["groups"]}
    reseller, integrator = groups["reseller"], groups["integrator"]
    usd = reseller["money"]["USD"]
    assert usd["revenue"] == {"acv": "150000.00", "expansion": "20000.00", "renewal": "0.00",
                              "usage": "0.00", "total": "170000.00"}
    assert usd["cost"]["by_rule_kind"] == {"expansion": "2000.00", "upfront": "30000.00"}
    assert (usd["cost"]["earned"], usd["cost"]["reversed"], usd["cost"]["net"]) == (
        "32000.00", "10000.00", "22000.00")
    assert usd["cost_per_revenue"] == "0.1294"  # 22,000 / 170,000
    assert usd["retained_per_commission"] == "0.9091"  # 20,000 / 22,000
    assert (reseller["customers_active"], reseller["churned"], reseller["churn_rate"],
            reseller["renewal_rate"]) == (2, 1, "0.5000", "0.0000")
    assert reseller["time_to_first_value_days"] == "45.0"
    assert reseller["scores"] == {"onboarding_completed": {"mean": "9.00", "n": 1}}
    assert integrator["money"]["USD"]["cost"]["net"] == "8000.00"
    assert reseller["partners"] == integrator["partners"] == 1

    by_month = await client.get("/v1/programme/economics", params={
        "from": "2026-01-01", "to": AS_OF, "group_by": "cohort,month", "plan_id": world["plan"]})
    cells = {(g["key"]["cohort"], g["key"]["month"]): g for g in by_month.json()["groups"]}
    assert cells[("2026Q1", "2026-04")]["churned"] == 1
    assert cells[("2026Q3", "2026-09")]["money"]["USD"]["revenue"]["acv"] == "40000.00"
    csv = await client.get("/v1/programme/economics", params={"plan_id": world["plan"],
                                                               "from": "2026-01-01", "to": AS_OF},
                           headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    rows = {r["type"]: r for r in DictReader(StringIO(csv.text))}
    assert (rows["reseller"]["revenue_total"], rows["reseller"]["cost_net"],
            rows["reseller"]["currency"], rows["reseller"]["cohort"]) == (
        "170000.00", "22000.00", "USD", "")
    assert rows["integrator"]["cost_per_revenue"] == "0.2000"  # 8,000 / 40,000


async def test_bad_economics_queries_name_the_field(client):
    for params, field in (({"group_by": "colour"}, "group_by"),
                          ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
                          ({"from": "2026-02-30"}, "query.from")):
        r = await client.get("/v1/programme/economics", params=params)
        assert r.status_code == 422 and r.headers["content-type"].startswith(
            "application/problem+json"), r.text
        assert field in r.text, (field, r.text)
    r = await client.get("/v1/partners/x/forecast", params={"churn_rate": "1.5"})
    assert r.status_code == 422 and "churn_rate" in r.text


async def test_the_forecast_puts_renewals_in_their_months(client, world):
    r = await client.get(f"/v1/partners/{world['p1']}/forecast",
                         params={"as_of": AS_OF, "months": "12", "churn_rate": "0"})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["churn_rate"] == {"value": "0", "source": "assumed", "partner_type": "reseller"}
    assert f["months"] == 12 and f["as_of"] == AS_OF
    # c1 started 2026-01-01 on a 12-month term: renewal on 2027-01-01, tenure year 2,
    # 5% of its ARR 120,000 (100,000 + the 20,000 expansion)
    assert [(x["date"], x["commission"]) for x in f["renewals"]] == [("2027-01-01", "6000.00")]
    usd = {m["month"]: m for m in f["currencies"]["USD"]}
    assert sorted(usd)[0] == "2026-11" and len(usd) == 12
    assert usd["2027-01"]["components"]["recurring"] == "6000.00"
    assert usd["2027-01"]["expected"] == "6000.00"
    assert all(m["components"]["recurring"] == "0.00" for k, m in usd.items() if k != "2027-01")
    # P2: the integrator's held 4,000 reaches its deadline on 2026-11-30, the renewal of
    # c3 (started 2026-09-01) falls on 2027-09-01: 5% of 40,000
    r2 = (await client.get(f"/v1/partners/{world['p2']}/forecast",
                           params={"as_of": AS_OF, "months": "12"})).json()
    assert r2["churn_rate"]["source"] == "observed" and r2["churn_rate"]["partner_type"] == \
        "integrator"
    assert [(x["date"], x["commission"]) for x in r2["renewals"]] == [("2027-09-01", "2000.00")]
    assert [(v["deadline"], v["held"]) for v in r2["vesting"]] == [("2026-11-30", "4000.00")]


async def _render(binary: str, html: str, name: str) -> tuple[Cells, bytes]:
    """The page in headless Chromium: its DOM, a screenshot kept in ARTIFACTS, and no
    console messages (nothing on the page runs; an error would be logged)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    done = await asyncio.to_thread(run_chromium, binary, "--enable-logging=stderr", "--v=0",
                                   "--dump-dom", page.as_uri())
    assert b"CONSOLE" not in done.stderr, done.stderr.decode()[-2000:]
    shot = ARTIFACTS / f"{name}.png"
    await asyncio.to_thread(run_chromium, binary, f"--screenshot={shot}",
                            "--window-size=1400,2400", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    cells = Cells()
    cells.feed(done.stdout.decode())
    assert "svg" in cells.tags and "table" in cells.tags
    assert "script" not in cells.tags
    return cells, done.stdout


async def test_partner_dashboard_renders_with_the_apis_numbers(client, world):
    binary = chromium()
    p1 = world["p1"]
    r = await client.get(f"/v1/partners/{p1}/dashboard", params={"as_of": AS_OF})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    cells, dom = await _render(binary, r.text, "partner-dashboard")
    balances = (await client.get(f"/v1/partners/{p1}/balances",
                                 params={"as_of": AS_OF})).json()["balances"][0]
    forecast = (await client.get(f"/v1/partners/{p1}/forecast",
                                 params={"as_of": AS_OF})).json()
    shown: dict[tuple[str, str], Decimal] = {}
    for a, text in cells.cells:
        if a["data-role"] in ("balance", "earned", "forecast-low", "forecast-expected",
                              "forecast-high"):
            shown[(a["data-role"], a.get("data-bucket") or a.get("data-month"))] = number(text)
    for bucket in ("held", "pending", "payable", "in_payout", "paid", "forfeited", "clawed_back"):
        assert shown[("balance", bucket)] == Decimal(balances[bucket]), bucket
    assert shown[("balance", "clawed_back")] == Decimal("10000.00")
    for m in forecast["currencies"]["USD"]:
        for part in ("low", "expected", "high"):
            assert shown[(f"forecast-{part}", m["month"])] == Decimal(m[part]), (m, part)
    # earned per month: 20,000 in January, 10,000 in March, 2,000 in June
    assert shown[("earned", "2026-01")] == Decimal("20000.00")
    assert shown[("earned", "2026-03")] == Decimal("10000.00")
    assert shown[("earned", "2026-06")] == Decimal("2000.00")
    assert b"/statements/2026-01" in dom


async def test_programme_dashboard_renders_with_the_apis_numbers(client, world):
    binary = chromium()
    params = {"from": "2026-01-01", "to": AS_OF, "plan_id": world["plan"]}
    r = await client.get("/v1/programme/dashboard", params=params)
    assert r.status_code == 200, r.text
    cells, _ = await _render(binary, r.text, "programme-dashboard")
    doc = {by: (await client.get("/v1/programme/economics",
                                 params={**params, "group_by": by})).json()
           for by in ("type", "cohort")}
    shown = {(a["data-role"], a["data-by"], a["data-key"]): text for a, text in cells.cells}
    checked = 0
    for by, d in doc.items():
        for g in d["groups"]:
            key = g["key"][by]
            usd = g["money"]["USD"]
            assert number(shown[("revenue", by, key)]) == Decimal(usd["revenue"]["total"])
            assert number(shown[("net_cost", by, key)]) == Decimal(usd["cost"]["net"])
            assert shown[("cost_per_revenue", by, key)] == usd["cost_per_revenue"]
            churn = shown[("churn_rate", by, key)].rstrip("%")
            assert Decimal(churn) / 100 == Decimal(g["churn_rate"])
            checked += 1
    assert checked == 4  # two types, two cohorts (2026Q1, 2026Q3)
