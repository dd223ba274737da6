"""The pilot report over a scripted pilot through the real services (issue 16): each arm's
renewals, churns, revenue, cost, expansion, time to first value and scores counted by
hand; the differences with their intervals; the HTML page (Accept: text/html) rendered in
headless Chromium with no console message and the JSON's numbers on it.

The script, 12 resellers on a plan paying 20% of ACV upfront; the pilot's treatment pays
25%; six partners an arm (T0..T5, C0..C5), i their index:
- before the pilot (2026-06-01): customers a_i and b_i, ACV 1,000 each;
- in the pilot (2027-01-01 .. 2027-06-30): customer n_i, ACV 10,000 + 1,000 i, onboarded
  10 + i days (treatment) or 20 + i days (control) after its start, with a score of 8 or 9
  (treatment: i even 8, odd 9) or 6 or 7 (control); a_0..a_2 of the treatment expand by
  500; on 2027-05-20 b_0, b_1 (treatment) and b_0..b_4 (control) churn; on 2027-06-01
  the other a_i and b_i renew at ARR 1,000.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from tests.integration.test_programme_views import _render
from tests.integration.test_statement_html import Cells, chromium, number
from trailpay.adapters.db import raw
from trailpay.core.programme.compare import t_quantile

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "{rate}"}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""
CHURNS = {"treatment": 2, "control": 5}  # b_0 .. b_(k-1) churn


def _script(arm: str, i: int, p: str) -> tuple[list[dict], dict]:
    """The in-pilot events of partner i of an arm."""
    n, a, b = uid("N"), f"{p}-a", f"{p}-b"
    ttfv = (10 if arm == "treatment" else 20) + i
    score = (8 if arm == "treatment" else 6) + i % 2
    at = lambda d: f"{d}T09:00:00Z"  # noqa: E731
    onboarded = date(2027, 2, 1) + timedelta(days=ttfv)
    events = [
        cloud_event("deal.closed", deal(n, [(p, "1")], acv=f"{10000 + 1000 * i}.00",
                                        start="2027-02-01"), time_=at("2027-02-01")),
        cloud_event("milestone.achieved", {"customer_id": n, "milestone": "onboarding_completed",
                                           "score": str(score)}, time_=at(onboarded)),
    ]
    if arm == "treatment" and i < 3:
        events.append(cloud_event("subscription.expanded", {
            "customer_id": a, "currency": "USD", "delta_arr": "500.00",
            "effective_date": "2027-03-01"}, time_=at("2027-03-01")))
    for c, churns in ((a, False), (b, i < CHURNS[arm])):
        if churns:
            events.append(cloud_event("subscription.churned", {
                "customer_id": c, "effective_date": "2027-05-20", "reason": "budget"},
                time_=at("2027-05-20")))
        else:
            events.append(cloud_event("subscription.renewed", {
                "customer_id": c, "contract_id": f"K-{c}", "currency": "USD",
                "arr": "1000.00", "period_start": "2027-06-01", "period_end": "2028-05-31"},
                time_=at("2027-06-01")))
    return events, {"ttfv": ttfv, "score": score}


@pytest.fixture(scope="module")
async def scripted(stack, engine):
    async with httpx.AsyncClient(base_url=stack, timeout=120.0, headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}"}) as ops:
        control, treatment = uid("ctl"), uid("trt")
        for plan_id, rate in ((control, "0.20"), (treatment, "0.25")):
            r = await ops.put(f"/v1/plans/{plan_id}/versions/1",
                              content=PLAN.format(plan_id=plan_id, rate=rate).encode(),
                              headers={"Content-Type": "application/yaml"})
            assert r.status_code == 201, r.text
        run = uid("R")
        arms = {"treatment": [f"{run}-T{i}" for i in range(6)],
                "control": [f"{run}-C{i}" for i in range(6)]}
        everyone = arms["treatment"] + arms["control"]
        for p in everyone:
            r = await ops.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": control})
            assert r.status_code == 201, r.text
        await post_events(ops, [cloud_event("deal.closed", deal(f"{p}-{c}", [(p, "1")],
                                acv="1000.00", start="2026-06-01"),
                                time_="2026-06-01T09:00:00Z") for p in everyone for c in "ab"])
        pilot_id = uid("pilot")
        r = await ops.put(f"/v1/pilots/{pilot_id}", json={
            "control_plan": control, "treatment_plan": treatment,
            "assignment": {"partners": arms["treatment"]}, "starts": "2027-01-01",
            "ends": "2027-06-30"})
        assert r.status_code == 201, r.text
        events = []
        for arm, ps in arms.items():
            for i, p in enumerate(ps):
                events += _script(arm, i, p)[0]
        await post_events(ops, events)
        want = 24 + len(events)

        async def settled():
            async with engine.connect() as conn:
                pg = await raw(conn)
                return await pg.fetchval("SELECT count(*) FROM accrual_applied WHERE "
                                         "partner_id = ANY($1::text[])", everyone) == want
        await eventually(settled, timeout=60)
        r = await ops.get(f"/v1/pilots/{pilot_id}/report")
        assert r.status_code == 200, r.text
        yield {"ops": ops, "id": pilot_id, "arms": arms, "doc": r.json()}


def _diffs(doc) -> dict:
    return {d["metric"]: d for d in doc["differences"]}


async def test_the_arms_by_hand(scripted):
    arms = scripted["doc"]["arms"]
    t, c = arms["treatment"], arms["control"]
    assert t["partners"] == scripted["arms"]["treatment"]
    # customers active in the period: a_i, b_i and n_i for six partners
    for arm, churned, renewals, rate_c, rate_r, ttfv, score in (
            (t, 2, 10, "0.1111", "0.8333", "12.5", "8.50"),  # 2/18, 10/12, mean of 10..15
            (c, 5, 7, "0.2778", "0.5833", "22.5", "6.50")):  # 5/18, 7/12, mean of 20..25
        m = arm["metrics"]
        assert (m["partners"], m["customers_active"], m["churned"], m["renewals"]) == (
            6, 18, churned, renewals)
        assert (m["churn_rate"], m["renewal_rate"]) == (rate_c, rate_r)
        assert (m["time_to_first_value_days"], m["onboarded"]) == (ttfv, 6)
        assert m["scores"] == {"onboarding_completed": {"mean": score, "n": 6}}
    # revenue: ACV of n_i 75,000 (10,000 .. 15,000), renewals 1,000 each, expansion 3 × 500
    assert t["money"]["USD"]["revenue"] == {"acv": "75000.00", "expansion": "1500.00",
                                            "renewal": "10000.00", "usage": "0.00",
                                            "total": "86500.00"}
    assert c["money"]["USD"]["revenue"]["total"] == "82000.00"
    # cost: 25% (treatment) or 20% (control) of 75,000; the shadow the other way round
    assert (t["totals"][0]["cost_real"], t["totals"][0]["cost_shadow"]) == ("18750.00",
                                                                          "15000.00")
    assert (c["totals"][0]["cost_real"], c["totals"][0]["cost_shadow"]) == ("15000.00",
                                                                          "18750.00")
    assert t["money"]["USD"]["cost"]["net"] == t["totals"][0]["cost_real"]
    assert t["totals"][0]["attributed_revenue"] == t["money"]["USD"]["revenue"]["total"]
    assert (t["totals"][0]["cost_per_revenue_real"], c["totals"][0]["cost_per_revenue_real"]) \
        == ("0.2168", "0.1829")  # 18,750 / 86,500 and 15,000 / 82,000


async def test_the_differences_by_hand(scripted):
    d = _diffs(scripted["doc"])
    assert scripted["doc"]["differences_of"] == "treatment − control"
    expected = {  # metric: (control, treatment, difference, n control, n treatment)
        "renewal_rate": ("0.5833", "0.8333", "0.2500", 12, 12),  # 7/12, 10/12
        "churn_rate": ("0.2778", "0.1111", "-0.1667", 18, 18),  # 5/18, 2/18
        "attributed_revenue_USD": ("13666.6667", "14416.6667", "750.0000", 6, 6),
        "commission_cost_USD": ("2500.0000", "3125.0000", "625.0000", 6, 6),
        "expansion_arr_USD": ("0.0000", "250.0000", "250.0000", 6, 6),
        "cost_per_revenue_USD": ("0.1829", "0.2168", "0.0338", 6, 6),
        "time_to_first_value_days": ("22.5000", "12.5000", "-10.0000", 6, 6),
        "score_onboarding_completed": ("6.5000", "8.5000", "2.0000", 6, 6),
    }
    assert set(d) == set(expected)
    for metric, (a, b, diff, na, nb) in expected.items():
        got = d[metric]
        assert (got["a"], got["b"], got["difference"], got["n_a"], got["n_b"]) == (
            a, b, diff, na, nb), metric
        low, high = (Decimal(v) for v in got["ci95"])
        assert low <= Decimal(diff) <= high and got["note"] is None, metric
    # time to first value: 10..15 against 20..25, variance 3.5 each, Welch df exactly 10
    half = t_quantile(Decimal(10)) * (Decimal("3.5") / 6 * 2).sqrt()
    q = Decimal("0.0001")
    assert d["time_to_first_value_days"]["ci95"] == [f"{(-10 - half).quantize(q)}",
                                                     f"{(-10 + half).quantize(q)}"]
    assert round(half, 2) == Decimal("2.41")
    # the treatment's renewal rate is higher beyond doubt? 12 decisions an arm cannot say
    assert Decimal(d["renewal_rate"]["ci95"][0]) < 0 < Decimal(d["renewal_rate"]["ci95"][1])


async def test_the_page_renders_with_the_json_s_numbers(scripted):
    binary = chromium()
    r = await scripted["ops"].get(f"/v1/pilots/{scripted['id']}/report",
                                  headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    cells, _ = await _render(binary, r.text, "pilot-report")
    doc = (await scripted["ops"].get(f"/v1/pilots/{scripted['id']}/report")).json()
    arm = {(a["data-arm"], a["data-figure"], a.get("data-currency", a.get("data-milestone"))):
           text for a, text in cells.cells if a["data-role"] == "arm"}
    diff = {(a["data-metric"], a["data-part"]): text for a, text in cells.cells
            if a["data-role"] == "diff"}
    checked = 0
    for name, a in doc["arms"].items():
        t, m = a["totals"][0], a["metrics"]
        for fig in ("attributed_revenue", "cost_real", "cost_shadow"):
            assert number(arm[(name, fig, "USD")]) == Decimal(t[fig]), (name, fig)
        for fig in ("cost_per_revenue_real", "cost_per_revenue_shadow"):
            assert arm[(name, fig, "USD")] == t[fig], (name, fig)
        assert number(arm[(name, "expansion_arr", "USD")]) == Decimal(
            a["money"]["USD"]["revenue"]["expansion"])
        for fig in ("partners", "customers_active", "churned", "renewals"):
            assert int(arm[(name, fig, None)]) == m[fig], (name, fig)
        for fig in ("churn_rate", "renewal_rate"):
            assert Decimal(arm[(name, fig, None)].rstrip("%")) / 100 == Decimal(m[fig])
        assert arm[(name, "time_to_first_value_days", None)] == m["time_to_first_value_days"]
        assert arm[(name, "score", "onboarding_completed")] == \
            m["scores"]["onboarding_completed"]["mean"]
        checked += 1
    for d in doc["differences"]:
        k = d["metric"]
        assert diff[(k, "difference")] == d["difference"]
        assert [diff[(k, "low")], diff[(k, "high")]] == d["ci95"]
        assert (int(diff[(k, "n_a")]), int(diff[(k, "n_b")])) == (d["n_a"], d["n_b"])
        checked += 1
    assert checked == 2 + 8


async def test_a_tiny_pilot_s_page_says_not_enough_data(scripted):
    """One partner an arm, no facts yet: every difference says so, and shows no interval."""
    ops = scripted["ops"]
    control, treatment = uid("ctl"), uid("trt")
    for plan_id, rate in ((control, "0.20"), (treatment, "0.25")):
        r = await ops.put(f"/v1/plans/{plan_id}/versions/1",
                          content=PLAN.format(plan_id=plan_id, rate=rate).encode(),
                          headers={"Content-Type": "application/yaml"})
        assert r.status_code == 201, r.text
    ps = sorted([uid("P"), uid("P")])
    for p in ps:
        r = await ops.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": control})
        assert r.status_code == 201, r.text
    pilot_id = uid("pilot")
    r = await ops.put(f"/v1/pilots/{pilot_id}", json={
        "control_plan": control, "treatment_plan": treatment,
        "assignment": {"partners": ps[:1]}, "starts": "2030-01-01", "ends": "2030-03-31"})
    assert r.status_code == 201, r.text
    doc = (await ops.get(f"/v1/pilots/{pilot_id}/report")).json()
    assert [d["metric"] for d in doc["differences"]] == [
        "renewal_rate", "churn_rate", "time_to_first_value_days"]  # no money in the period
    assert all(d["ci95"] is None and d["note"].startswith("not enough data")
               for d in doc["differences"])
    page = await ops.get(f"/v1/pilots/{pilot_id}/report", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    cells = Cells()
    cells.feed(page.text)
    notes = [text for a, text in cells.cells if a.get("data-part") == "note"]
    assert notes == [d["note"] for d in doc["differences"]]
    assert not [a for a, _ in cells.cells if a.get("data-part") == "low"]
