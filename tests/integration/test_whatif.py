"""What-if (issue 16) through the real services: a programme runs live, then is replayed.

(a) the live plan replayed over all history equals the live balances to the cent (in this
process and in worker processes over partner shards); (b) a candidate that raises the usage
rate from 3% to 5% changes the usage lines only, by hand-checkable amounts; and nothing
live is touched.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import yaml

from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from trailpay.adapters import rebuild, simulation_store
from trailpay.adapters.db import raw
from trailpay.core.plans import parse_plan

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller, integrator]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "0.20", cap: "25000.00",
     vesting: {{held_pct: "0.50", release_on: [onboarding_completed], within_days: 90}}}}
  - {{id: usage, kind: usage, rate: "0.03"}}
  - {{id: onboarded, kind: milestone, milestone: onboarding_completed, amount: "500.00"}}
  - {{id: refer, kind: referral, amount: "200.00"}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


def usage(customer: str, revenue: str, month: str) -> dict:
    return cloud_event("usage.reported", {
        "customer_id": customer, "currency": "USD", "metric": "api_calls", "quantity": 10,
        "revenue": revenue, "period_start": f"{month}-01", "period_end": f"{month}-28"},
        source="billing.test", time_=f"{month}-28T12:00:00Z")


@pytest.fixture(scope="module")
async def programme(stack, engine):
    """Two partners on one plan: P1 sources C1 alone, P1 and P2 split C2 60/40."""
    async with httpx.AsyncClient(base_url=stack, timeout=30.0, headers={
            "Authorization": "Bearer test-admin-token"}) as ops:
        plan_id = uid("wplan")
        text = PLAN.format(plan_id=plan_id)
        r = await ops.put(f"/v1/plans/{plan_id}/versions/1", content=text.encode(),
                          headers={"Content-Type": "application/yaml"})
        assert r.status_code == 201, r.text
        p1, p2 = uid("P"), uid("P")
        for p in (p1, p2):
            r = await ops.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": plan_id})
            assert r.status_code == 201, r.text
        c1, c2 = uid("C"), uid("C")
        await post_events(ops, [
            cloud_event("deal.closed", deal(c1, [(p1, "1")], acv="10000.00",
                                            start="2025-03-01"), time_="2025-03-01T09:00:00Z"),
            cloud_event("deal.closed", deal(c2, [(p1, "0.6"), (p2, "0.4")], acv="20000.00",
                                            start="2025-04-01"), time_="2025-04-01T09:00:00Z"),
            cloud_event("milestone.achieved", {"customer_id": c1,
                                               "milestone": "onboarding_completed"},
                        source="cs.test", time_="2025-04-15T09:00:00Z"),
        ])

        async def applied(n: int):
            async with engine.connect() as conn:
                pg = await raw(conn)
                return await pg.fetchval(
                    "SELECT count(*) FROM accrual_applied WHERE partner_id = ANY($1::text[])",
                    [p1, p2]) == n
        # The milestone applied before the later usage arrives: none of it is late, so the
        # live postings of May-June are the sorted fold's (a late milestone would reverse the
        # forfeiture by corrections dated today, outside the window compared below).
        await eventually(lambda: applied(4))
        await post_events(ops, [
            usage(c1, "1000.00", "2025-05"), usage(c2, "2500.00", "2025-06"),
            usage(c1, "333.33", "2025-07"),
            cloud_event("referral.qualified", {"partner_id": p2, "lead_id": "L1"},
                        time_="2025-05-02T09:00:00Z")])

        await eventually(lambda: applied(9))
        yield {"plan_id": plan_id, "text": text, "p1": p1, "p2": p2, "ops": ops}


async def _run(ops, body) -> dict:
    r = await ops.post("/v1/simulations", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/simulations/{r.json()['simulation_id']}"

    async def done():
        got = (await ops.get(r.headers["location"])).json()
        assert got["status"] != "failed", got
        return got if got["status"] == "done" else None
    return await eventually(done)


def _figures(result, level, key) -> dict:
    return next(i for i in result["result"][f"{level}s" if level != "total" else "total"]
                if i["key"] == key)["figures"]


async def test_the_live_plan_replayed_over_all_history_equals_live_balances(programme, engine):
    w = programme
    got = await _run(w["ops"], {"candidate": w["text"], "partners": [w["p1"], w["p2"]]})
    assert got["applied"] == 9 and got["refused"] == 0
    async with engine.connect() as conn:
        live = await rebuild.live_balances(conn)
    for p in (w["p1"], w["p2"]):
        figs = _figures(got, "partner", p)
        per_bucket: dict[str, Decimal] = {}
        for (partner, _, bucket, _), amount in live.items():
            if partner == p:
                per_bucket[bucket] = per_bucket.get(bucket, Decimal(0)) + amount
        for bucket, amount in per_bucket.items():
            assert Decimal(figs[bucket]["candidate"]) == amount, (p, bucket)
            assert Decimal(figs[bucket]["actual"]) == amount, (p, bucket)
        assert figs["cost"]["difference"] == "0.00"
    # P1: anchor 2,000 + 2,400; usage 30 + 45 + 10.00 (333.33 × 3% = 9.9999); onboarded 500.
    p1 = _figures(got, "partner", w["p1"])
    assert p1["rule:anchor"]["candidate"] == "4400.00"
    assert p1["rule:usage"]["candidate"] == "85.00"
    assert p1["cost"]["candidate"] == "4985.00"
    assert p1["revenue"]["actual"] == "24833.33"  # 10,000 + 12,000 + 1,000 + 1,500 + 333.33
    total = got["result"]["total"][0]
    assert total["figures"]["cost"]["candidate"] == "6815.00"  # + P2: 1,600 + 30 (40% of 2,500 at 3%) + 200
    csv_text = (await w["ops"].get(f"/v1/simulations/{got['simulation_id']}",
                                   headers={"Accept": "text/csv"})).text
    assert csv_text.splitlines()[0] == "level,key,currency,figure,actual,candidate,difference"
    assert f"partner,{w['p1']},USD,rule:usage,85.00,85.00,0.00" in csv_text


async def test_worker_processes_give_the_same_figures(programme, engine, settings):
    w = programme
    plan = parse_plan(yaml.safe_load(w["text"]))
    types = {w["p1"]: "reseller", w["p2"]: "reseller"}
    start, end = simulation_store.period(None, None)
    outcomes = []
    for workers, parallel_from in ((1, 10**9), (2, 0)):
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            outcomes.append(await simulation_store.simulate(
                conn, settings.asyncpg_dsn, {p: plan for p in types}, types, start, end,
                workers, parallel_from))
    assert outcomes[0].rows == outcomes[1].rows and outcomes[1].applied == 9


async def test_a_candidate_usage_rate_changes_only_the_usage_lines(programme, engine):
    w = programme
    doc = yaml.safe_load(w["text"])
    doc["version"] = 2
    doc["rules"][1]["rate"] = "0.05"
    async with engine.connect() as conn:
        pg = await raw(conn)
        before = await pg.fetchval("SELECT count(*) FROM postings")
    got = await _run(w["ops"], {"candidate": doc, "from": "2025-05-01", "to": "2025-06-30",
                                "partners": [w["p1"], w["p2"]]})
    p1, p2 = (_figures(got, "partner", w[p]) for p in ("p1", "p2"))
    # In May-June: P1's usage 1,000 + 1,500 (60% of 2,500) at 3% -> 5%: 75.00 -> 125.00;
    # P2's 1,000 (40%) : 30.00 -> 50.00. Nothing else differs.
    assert (p1["rule:usage"]["actual"], p1["rule:usage"]["candidate"]) == ("75.00", "125.00")
    assert (p2["rule:usage"]["actual"], p2["rule:usage"]["candidate"]) == ("30.00", "50.00")
    for figs in (p1, p2):
        changed = {f for f, v in figs.items() if v["difference"] not in ("0.00", "0")}
        assert changed <= {"rule:usage", "cost", "pending", "payable"}, changed
        assert figs["cost"]["difference"] == figs["rule:usage"]["difference"]
    assert got["result"]["total"][0]["cost_share"]["candidate"] > got["result"]["total"][0][
        "cost_share"]["actual"]
    async with engine.connect() as conn:
        pg = await raw(conn)
        assert await pg.fetchval("SELECT count(*) FROM postings") == before  # isolation


async def test_a_bad_candidate_is_a_problem_naming_the_field(programme):
    ops = programme["ops"]
    doc = yaml.safe_load(programme["text"])
    doc["rules"][1]["rate"] = "1.5"
    r = await ops.post("/v1/simulations", json={"candidate": doc})
    assert r.status_code == 422 and r.headers["content-type"].startswith(
        "application/problem+json")
    assert r.json()["field"].startswith("candidate.rules[1].rate"), r.json()
    r = await ops.post("/v1/simulations", json={"candidate": programme["text"],
                                                "partners": ["P-nobody-here"]})
    assert r.status_code == 422 and r.json()["field"] == "partners", r.json()
    assert (await ops.get("/v1/simulations/sim-nothing")).status_code == 404


async def test_the_cli_shows_actual_against_candidate(programme, settings, tmp_path):
    import asyncio
    import os
    import sys

    w = programme
    doc = yaml.safe_load(w["text"])
    doc["version"] = 2
    doc["rules"][1]["rate"] = "0.05"
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "whatif", str(path), "--from", "2025-05-01",
        "--to", "2025-06-30", "--partners", f"{w['p1']},{w['p2']}",
        env={**os.environ, "DATABASE_URL": settings.database_url, "COLUMNS": "200",
             "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    total = next(line for line in text.splitlines() if "total" in line and "all" in line)
    # May-June: usage 75 + 30 at 3% -> 125 + 50 at 5%: cost +70.00 over 2 partners.
    assert "70.00" in total, text
    assert "GET /v1/simulations/sim-" in text
