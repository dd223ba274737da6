"""Design §4: a plan version applies to every fact dated in its period, whenever the fact
arrives; publishing one that would re-rate recorded facts needs `retroactive: true`, and
the re-rating is posted as corrections that a rebuild reproduces to the cent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.helpers import cloud_event, eventually, post_events, uid
from trailpay.adapters.db import raw
from trailpay.adapters.rebuild import rebuild

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: {version}
effective_from: "{effective_from}"
currency: USD
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "{rate}"}}
payout: {{minimum: "100.00", hold_days: 0}}
"""


async def _put(client, plan_id: str, version: int, effective_from: str, rate: str,
               retroactive: bool = False):
    doc = PLAN.format(plan_id=plan_id, version=version, effective_from=effective_from, rate=rate)
    return await client.put(f"/v1/plans/{plan_id}/versions/{version}", content=doc.encode(),
                            params={"retroactive": "true"} if retroactive else None,
                            headers={"Content-Type": "application/yaml"})


async def _payable(client, partner: str) -> Decimal:
    got = (await client.get(f"/v1/partners/{partner}/balances")).json()["balances"]
    return Decimal(got[0]["payable"]) if got else Decimal(0)


def _deal(customer: str, partner: str, acv: str, day: str) -> dict:
    return cloud_event("deal.closed", {
        "deal_id": f"D-{customer}", "customer_id": customer, "kind": "new", "currency": "USD",
        "acv": acv, "tcv": acv, "term_months": 12, "start_date": day,
        "partners": [{"partner_id": partner, "role": "sourced", "share": "1"}]},
        time_=f"{day}T10:00:00Z")


async def test_a_version_that_re_rates_recorded_facts_needs_the_flag_and_posts_corrections(
        client, engine):
    plan_id, partner = uid("retro"), uid("P")
    assert (await _put(client, plan_id, 1, "2026-01-01", "0.10")).status_code == 201
    r = await client.put(f"/v1/partners/{partner}", json={"type": "reseller", "plan_id": plan_id})
    assert r.status_code == 201, r.text
    await post_events(client, [_deal(uid("C"), partner, "100000.00", "2026-02-01"),
                               _deal(uid("C"), partner, "50000.00", "2026-05-01")])
    await eventually(lambda: _is(client, partner, Decimal("15000.00")))

    # Version 2 from 2026-04-01 pays 20%: the May deal is already recorded under version 1.
    r = await _put(client, plan_id, 2, "2026-04-01", "0.20")
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["field"] == "retroactive" and "1 recorded facts of 1 partners" in problem["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/plans/{plan_id}")).json()["versions"][-1]["version"] == 1

    r = await _put(client, plan_id, 2, "2026-04-01", "0.20", retroactive=True)
    assert r.status_code == 201, r.text
    assert (r.json()["rerated_facts"], r.json()["rerated_partners"]) == (1, 1)
    # 10% of 100,000.00 (February, version 1) + 20% of 50,000.00 (May, version 2).
    await eventually(lambda: _is(client, partner, Decimal("20000.00")))
    async with engine.connect() as conn:
        pg = await raw(conn)
        rows = await pg.fetch(
            "SELECT explanation, amount FROM postings WHERE partner_id = $1 "
            "AND group_id LIKE '%:correction:%' AND account <> 'company:commissions'", partner)
    assert [r[1] for r in rows] == [Decimal("5000.00")]
    assert f"plan {plan_id} version 2 was published retroactively, from 2026-04-01" in rows[0][0]

    # Facts that arrive later are rated by the version of their date; a version ahead of
    # every recorded fact needs no flag.
    await post_events(client, [_deal(uid("C"), partner, "10000.00", "2026-06-01")])
    await eventually(lambda: _is(client, partner, Decimal("22000.00")))
    assert (await _put(client, plan_id, 3, "2027-01-01", "0.05")).status_code == 201

    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        result = await rebuild(conn, check=True, workers=1)
    assert result.differences == []


async def _is(client, partner: str, want: Decimal) -> bool:
    return await _payable(client, partner) == want
