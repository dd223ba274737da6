"""A scripted programme posted over HTTP ends with the balances the pure core computes.

Three partners of two types on one plan whose second version (a downturn cap)
takes over mid-year; splits; vesting released for one customer and forfeited for
another; a churn inside the window clawed back pro rata; renewals in tenure years
2 and 3 that cross a volume tier. The expected figures come from folding the same
events through trailpay.core directly; a few are also worked out by hand below.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import yaml

from tests.integration.helpers import cloud_event, eventually, uid
from tests.kit import fold_script, usd_as_of
from trailpay.adapters.db import raw
from trailpay.adapters.state_store import StateStore
from trailpay.core.state import PartnerState, state_to_json
from trailpay.core.plans import Enrollment, PlanBook, parse_plan
from trailpay.core.statements import month_bounds

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: {version}
effective_from: "{effective_from}"
currency: USD
partner_types: [reseller, integrator]
rules:
  - {{id: anchor-resell, kind: upfront, base: acv, rate: "0.20", cap: "{cap}", partner_types: [reseller],
     vesting: {{held_pct: "0.50", release_on: [onboarding_completed], within_days: 60}}}}
  - {{id: anchor-integrate, kind: upfront, base: acv, rate: "0.10", partner_types: [integrator]}}
  - {{id: trail, kind: recurring, rates_by_year: {{"2": "0.05", "3": "0.08"}}}}
  - {{id: grow, kind: expansion, rate: "0.10"}}
  - {{id: usage, kind: usage, rate: "0.02"}}
  - {{id: onboard, kind: milestone, milestone: onboarding_completed, amount: "300.00"}}
  - {{id: volume, kind: volume_tiers, tiers: [{{from: "0", multiplier: "1.0"}}, {{from: "250000", multiplier: "1.25"}}]}}
clawback: {{window_days: 120, mode: pro_rata}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


def _deal(c: str, acv: str, start: str, partners: dict[str, str]) -> dict:
    return {"deal_id": f"D-{c}", "customer_id": c, "kind": "new", "currency": "USD", "acv": acv,
            "tcv": acv, "term_months": 12, "start_date": start,
            "partners": [{"partner_id": p, "role": "sourced", "share": s} for p, s in partners.items()]}


def _script(c: dict[str, str], r1: str, r2: str, i1: str) -> list[tuple[str, str, dict]]:
    return [
        ("2024-01-15", "deal.closed", _deal(c["C1"], "200000.00", "2024-01-15", {r1: "0.7", i1: "0.3"})),
        ("2024-02-01", "deal.closed", _deal(c["C2"], "100000.00", "2024-02-01", {r2: "1"})),
        ("2024-02-20", "milestone.achieved", {"customer_id": c["C1"], "milestone": "onboarding_completed"}),
        ("2024-04-15", "usage.reported", {"customer_id": c["C2"], "currency": "USD", "metric": "seats",
                                          "quantity": "40", "revenue": "5000.00",
                                          "period_start": "2024-03-01", "period_end": "2024-03-31"}),
        ("2024-05-01", "deal.closed", _deal(c["C3"], "80000.00", "2024-05-01", {r1: "0.5", r2: "0.5"})),
        ("2024-06-15", "subscription.churned", {"customer_id": c["C3"], "effective_date": "2024-06-15",
                                                "reason": "budget"}),
        ("2024-08-01", "deal.closed", _deal(c["C4"], "150000.00", "2024-08-01", {r1: "1"})),
        ("2024-09-01", "subscription.expanded", {"customer_id": c["C1"], "currency": "USD",
                                                 "delta_arr": "50000.00", "effective_date": "2024-09-01"}),
        ("2025-01-15", "subscription.renewed", {"customer_id": c["C1"], "contract_id": "K1", "currency": "USD",
                                                "arr": "250000.00", "period_start": "2025-01-15",
                                                "period_end": "2026-01-14"}),
        ("2026-01-15", "subscription.renewed", {"customer_id": c["C1"], "contract_id": "K1", "currency": "USD",
                                                "arr": "260000.00", "period_start": "2026-01-15",
                                                "period_end": "2027-01-14"}),
    ]


def _plan_docs(plan_id: str) -> list[str]:
    return [PLAN.format(plan_id=plan_id, version=1, effective_from="2024-01-01", cap="30000.00"),
            PLAN.format(plan_id=plan_id, version=2, effective_from="2024-07-01", cap="15000.00")]


def _pure_fold(plan_docs: list[str], types: dict[str, str], overrides: dict[str, dict],
               script: list[tuple[str, str, dict]]
               ) -> tuple[dict[str, list[tuple]], dict[str, PartnerState]]:
    """The same programme folded through the core, no I/O (events at 10:00 on their day)."""
    book = PlanBook([parse_plan(yaml.safe_load(d)) for d in plan_docs])
    return fold_script(book, {p: Enrollment(p, t, "p", overrides.get(p, {}))
                              for p, t in types.items()},
                       [(datetime.fromisoformat(f"{day}T10:00:00+00:00"), type_, data)
                        for day, type_, data in script])


def _months(first: date, last: date) -> list[str]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


async def _applied(engine, event_id: str) -> int:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval(
            "SELECT count(*) FROM accrual_applied a JOIN journal j ON j.seq = a.journal_seq "
            "WHERE j.event_id = $1 AND a.outcome = 'applied'", event_id)


async def enrol_programme(client, name: str
                          ) -> tuple[list[str], dict[str, str], dict[str, dict], tuple[str, ...]]:
    """Publish the plan's two versions and enrol R1, R2 (rate override) and I1: (plan
    documents, types, overrides, (r1, r2, i1))."""
    plan_id = uid(name)
    docs = _plan_docs(plan_id)
    for n, doc in enumerate(docs, start=1):
        r = await client.put(f"/v1/plans/{plan_id}/versions/{n}", content=doc.encode(),
                             headers={"Content-Type": "application/yaml"})
        assert r.status_code == 201, r.text
    r1, r2, i1 = uid("R1"), uid("R2"), uid("I1")
    types = {r1: "reseller", r2: "reseller", i1: "integrator"}
    overrides = {r2: {"anchor-resell": {"rate": "0.25"}}}
    for p, t in types.items():
        r = await client.put(f"/v1/partners/{p}", json={"type": t, "plan_id": plan_id,
                                                       "overrides": overrides.get(p, {})})
        assert r.status_code == 201, r.text
    return docs, types, overrides, (r1, r2, i1)


async def test_a_scripted_programme_over_http_matches_the_pure_core(client, engine):
    docs, types, overrides, (r1, r2, i1) = await enrol_programme(client, "year")
    customers = {c: uid(c) for c in ("C1", "C2", "C3", "C4")}
    script = _script(customers, r1, r2, i1)

    # One event at a time, each applied before the next: across customers Kafka gives no
    # order, and the volume tier and vesting deadlines depend on it.
    for day, type_, data in script:
        event = cloud_event(type_, data, time_=f"{day}T10:00:00Z")
        r = await client.post("/v1/events", json=event,
                              headers={"Content-Type": "application/cloudevents+json"})
        assert r.status_code == 202, r.text
        await eventually(lambda eid=event["id"]: _applied(engine, eid))

    today = datetime.now(UTC).date()
    legs, states = _pure_fold(docs, types, overrides, script)
    expected = {p: usd_as_of(legs[p], today) for p in types}
    for partner in types:
        got = (await client.get(f"/v1/partners/{partner}/balances")).json()["balances"]
        assert len(got) == 1 and got[0]["currency"] == "USD"
        assert {b: Decimal(a) for b, a in got[0].items() if b != "currency"} == \
               {b: expected[partner].get(b, Decimal(0)) for b in got[0] if b != "currency"}, partner

    # The state the accrual stored (partner part and one row per customer book, read cold,
    # as a restarted or rebalanced consumer reads it) is the state the core folds to.
    async with engine.begin() as conn:
        stored = await StateStore(capacity=0).load(await raw(conn), sorted(types))
    for partner in types:
        assert state_to_json(stored[partner].state) == state_to_json(states[partner]), partner

    # balance_months, from which statements sum their openings, adds up over the months
    # to the balances projection, key by key (both written by the accrual, in one
    # transaction, from the same legs).
    async with engine.begin() as conn:
        pg = await raw(conn)
        apart = await pg.fetch(
            "SELECT * FROM (SELECT partner_id, currency, bucket, available_on, sum(amount) AS a "
            "FROM balance_months WHERE partner_id = ANY($1::text[]) GROUP BY 1, 2, 3, 4) m "
            "FULL JOIN (SELECT * FROM balances WHERE partner_id = ANY($1::text[])) b "
            "USING (partner_id, currency, bucket, available_on) "
            "WHERE m.a IS DISTINCT FROM b.amount", sorted(types))
        assert await pg.fetchval("SELECT count(*) FROM balance_months "
                                 "WHERE partner_id = ANY($1::text[])", sorted(types)) > 3
    assert apart == []

    # Hand-checked corners of the same books:
    # R2: 25% (override) of 100,000.00 = 25,000.00, half held; C2 never onboards, so the
    # usage event on 2024-04-15 (after the 2024-04-01 deadline) forfeits 12,500.00.
    assert expected[r2]["forfeited"] == Decimal("12500.00")
    # C3 churns 45 days in: 11 of 12 months unserved. R1: 20% of 80,000.00 × 50% = 8,000.00
    # → 7,333.33 clawed back; R2 (25%): 10,000.00 → 9,166.67.
    assert expected[r1]["clawed_back"] == Decimal("7333.33")
    assert expected[r2]["clawed_back"] == Decimal("9166.67")
    st = (await client.get(f"/v1/partners/{r1}/statements/2025-01")).json()
    trail = [ln for ln in st["lines"] if ln["rule_id"] == "trail"]
    # Year 2: R1's attributed ARR before the renewal is 250,000 × 0.7 + 150,000 = 325,000
    # ≥ 250,000 → ×1.25: 5% × 250,000.00 × 1.25 × 70% = 10,937.50.
    assert [ln["amount"] for ln in trail] == ["10937.50"]
    assert trail[0]["multiplier"] == "1.25" and "tenure year 2" in trail[0]["explanation"]

    # Every month of the programme, for every partner: the statement's opening and closing
    # (the gateway's one-statement read, with opening sums per hold class) and the
    # balances as of the month's last day equal the core's legs read by the core's rule.
    days = [date.fromisoformat(day) for day, _, _ in script]
    for partner in types:
        for month in _months(min(days), max(days)):
            first, last = month_bounds(month)
            st = (await client.get(f"/v1/partners/{partner}/statements/{month}")).json()
            for side, day in (("opening", first - timedelta(days=1)), ("closing", last)):
                want = usd_as_of(legs[partner], day)
                got = {b["currency"]: b for b in st[side]}.get("USD", {})
                assert {k: Decimal(v) for k, v in got.items() if k != "currency"} == \
                       {k: want.get(k, Decimal(0)) for k in got if k != "currency"}, \
                       (partner, month, side)
            past = (await client.get(f"/v1/partners/{partner}/balances",
                                     params={"as_of": last.isoformat()})).json()["balances"]
            want = usd_as_of(legs[partner], last)
            got = past[0] if past else {}
            assert {k: Decimal(v) for k, v in got.items() if k != "currency"} == \
                   {k: want.get(k, Decimal(0)) for k in got if k != "currency"}, (partner, month)
