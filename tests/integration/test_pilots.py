"""Pilots (issue 16) through the real services: the treatment arm is really paid under its
plan for the pilot's period, the control arm stays; each arm's shadow (the other arm's
plan) equals a what-if of that plan for those partners; rollout publishes the treatment."""

from __future__ import annotations

import httpx
import pytest
import yaml

from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from trailpay.adapters.db import raw

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "{rate}"}}
  - {{id: usage, kind: usage, rate: "0.03"}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


@pytest.fixture(scope="module")
async def pilot(stack, engine):
    async with httpx.AsyncClient(base_url=stack, timeout=60.0, headers={
            "Authorization": "Bearer test-admin-token"}) as ops:
        control, treatment = uid("ctl"), uid("trt")
        docs = {}
        for plan_id, rate in ((control, "0.20"), (treatment, "0.25")):
            docs[plan_id] = PLAN.format(plan_id=plan_id, rate=rate)
            r = await ops.put(f"/v1/plans/{plan_id}/versions/1", content=docs[plan_id].encode(),
                              headers={"Content-Type": "application/yaml"})
            assert r.status_code == 201, r.text
        partners = sorted(uid("P") for _ in range(4))
        for p in partners:
            r = await ops.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": control})
            assert r.status_code == 201, r.text
        # A fact before the pilot: accrued under the control plan for everyone.
        await post_events(ops, [cloud_event("deal.closed", deal(uid("C"), [(p, "1")],
                                acv="1000.00", start="2026-06-01"),
                                time_="2026-06-01T09:00:00Z") for p in partners])
        pilot_id = uid("pilot")
        body = {"control_plan": control, "treatment_plan": treatment,
                "assignment": {"partners": partners[:2]}, "starts": "2027-01-01",
                "ends": "2027-06-30"}
        r = await ops.put(f"/v1/pilots/{pilot_id}", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["arms"]["treatment"]["partners"] == partners[:2]
        again = await ops.put(f"/v1/pilots/{pilot_id}", json=body)
        assert again.status_code == 200, again.text
        other = await ops.put(f"/v1/pilots/{pilot_id}", json={**body, "ends": "2027-07-31"})
        assert other.status_code == 409, other.text
        # In the period: a 10,000 deal each; after it: a 1,000 deal each.
        await post_events(ops, [cloud_event("deal.closed", deal(uid("C"), [(p, "1")],
                                acv="10000.00", start="2027-02-01"),
                                time_="2027-02-01T09:00:00Z") for p in partners]
                          + [cloud_event("deal.closed", deal(uid("C"), [(p, "1")],
                             acv="1000.00", start="2027-08-01"),
                             time_="2027-08-01T09:00:00Z") for p in partners])

        async def settled():
            async with engine.connect() as conn:
                pg = await raw(conn)
                return await pg.fetchval(
                    "SELECT count(*) FROM accrual_applied WHERE partner_id = ANY($1::text[])",
                    partners) == 12
        await eventually(settled)
        yield {"ops": ops, "id": pilot_id, "partners": partners, "control": control,
               "treatment": treatment, "docs": docs, "engine": engine}


async def _anchor(engine, partner: str) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        pg = await raw(conn)
        rows = await pg.fetch(
            "SELECT plan_id, -amount FROM postings WHERE partner_id = $1 AND rule_id = 'anchor' "
            "AND account = 'company:commissions' ORDER BY effective_at", partner)
    return [(r[0], f"{r[1]:.2f}") for r in rows]


async def test_the_treatment_arm_is_paid_under_its_plan_for_the_period_only(pilot):
    t, c = pilot["treatment"], pilot["control"]
    for p in pilot["partners"][:2]:
        assert await _anchor(pilot["engine"], p) == [(c, "200.00"), (t, "2500.00"),
                                                     (c, "200.00")]
    for p in pilot["partners"][2:]:
        assert await _anchor(pilot["engine"], p) == [(c, "200.00"), (c, "2000.00"),
                                                     (c, "200.00")]


async def test_each_arm_s_shadow_equals_a_what_if_of_the_other_plan(pilot):
    ops = pilot["ops"]
    r = await ops.get(f"/v1/pilots/{pilot['id']}/report")
    assert r.status_code == 200, r.text
    arms = r.json()["arms"]
    treat, ctrl = arms["treatment"]["totals"][0], arms["control"]["totals"][0]
    assert (treat["cost_real"], treat["cost_shadow"]) == ("5000.00", "4000.00")
    assert (ctrl["cost_real"], ctrl["cost_shadow"]) == ("4000.00", "5000.00")
    assert treat["attributed_revenue"] == "20000.00"
    assert (treat["cost_per_revenue_real"], treat["cost_per_revenue_shadow"]) == ("0.2500",
                                                                                "0.2000")
    for arm, plan, members in (("treatment", pilot["control"], pilot["partners"][:2]),
                               ("control", pilot["treatment"], pilot["partners"][2:])):
        w = await ops.post("/v1/simulations", json={
            "candidate": yaml.safe_load(pilot["docs"][plan]), "partners": members,
            "from": "2027-01-01", "to": "2027-06-30"})
        assert w.status_code == 202, w.text

        async def done(loc=w.headers["location"]):
            got = (await ops.get(loc)).json()
            return got if got["status"] == "done" else None
        whatif = await eventually(done)
        per = {i["key"]: i["figures"]["cost"]["candidate"]
               for i in whatif["result"]["partners"]}
        shadow = {x["partner_id"]: x["cost_shadow"] for x in arms[arm]["per_partner"]}
        assert shadow == per, arm


async def test_two_partners_an_arm_are_not_enough_data(pilot):
    r = await pilot["ops"].get(f"/v1/pilots/{pilot['id']}/report")
    assert r.status_code == 200, r.text
    doc = r.json()
    diffs = {d["metric"]: d for d in doc["differences"]}
    assert set(diffs) == {"attributed_revenue_USD", "commission_cost_USD", "expansion_arr_USD",
                          "cost_per_revenue_USD", "renewal_rate", "churn_rate",
                          "time_to_first_value_days"}
    for d in diffs.values():
        assert d["ci95"] is None and d["note"].startswith("not enough data"), d
    # each arm: 2 partners; 10,000 of revenue each in the period, cost at 25% against 20%
    rev = diffs["attributed_revenue_USD"]
    assert (rev["n_a"], rev["n_b"], rev["difference"]) == (2, 2, "0.0000")
    cost = diffs["commission_cost_USD"]
    assert (cost["a"], cost["b"], cost["difference"]) == ("2000.0000", "2500.0000", "500.0000")
    # customers: the one before the pilot and the one in it, per partner: 4 an arm, none churned
    churn = diffs["churn_rate"]
    assert (churn["n_a"], churn["n_b"], churn["a"], churn["b"]) == (4, 4, "0.0000", "0.0000")
    assert doc["arms"]["treatment"]["metrics"]["customers_active"] == 4
    assert doc["arms"]["treatment"]["money"]["USD"]["cost"]["net"] == "5000.00"


async def test_rollout_publishes_the_treatment_as_the_next_control_version(pilot):
    ops = pilot["ops"]
    r = await ops.post(f"/v1/pilots/{pilot['id']}/rollout", json={"effective_from": "2028-01-01"})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    plan = (await ops.get(f"/v1/plans/{pilot['control']}")).json()
    v2 = plan["versions"][-1]
    assert v2["effective_from"] == "2028-01-01" and v2["document"]["rules"][0]["rate"] == "0.25"
    again = await ops.post(f"/v1/pilots/{pilot['id']}/rollout", json={})
    assert again.status_code == 200 and again.json()["version"] == 2
    view = (await ops.get(f"/v1/pilots/{pilot['id']}")).json()
    assert view["rolled_out"] == {"version": 2, "effective_from": "2028-01-01"}
