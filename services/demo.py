"""`make demo`: a small programme (one plan, two partners, a dozen events) and a statement.

The events go in one at a time, in the order of their `time`, each settled before the
next is sent (journaled, and every ledger entry it made applied by the accrual). Sent as
one batch they would land on several partitions, the journal's order across partitions
would follow arrival, and the figures depend on that order (a clawback takes from
whatever has vested by then): the demo printed different closings on different runs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from trailpay.adapters import ledger_entries
from trailpay.adapters.db import connection

PLAN = Path(__file__).parent / "demo_data" / "plan.yaml"
SOURCE = "crm.demo"


def _event(n: int, type_: str, time_: str, data: dict) -> dict:
    return {"specversion": "1.0", "id": f"demo-{n}", "source": SOURCE, "type": type_,
            "time": time_, "datacontenttype": "application/json", "data": data}


def demo_events() -> list[dict]:
    deal = {"deal_id": "D-100", "customer_id": "C-100", "kind": "new", "currency": "USD",
            "acv": "120000.00", "tcv": "360000.00", "term_months": 36, "start_date": "2026-02-01",
            "partners": [{"partner_id": "P-ACME", "role": "sourced", "share": "0.6"},
                         {"partner_id": "P-BOLT", "role": "implemented", "share": "0.4"}]}
    deal2 = {"deal_id": "D-200", "customer_id": "C-200", "kind": "new", "currency": "USD",
             "acv": "40000.00", "tcv": "40000.00", "term_months": 12, "start_date": "2026-02-15",
             "partners": [{"partner_id": "P-ACME", "role": "sourced", "share": "1"}]}
    cid = {"customer_id": "C-100"}
    return [
        _event(1, "deal.closed", "2026-02-01T10:00:00Z", deal),
        _event(2, "deal.closed", "2026-02-15T09:00:00Z", deal2),
        _event(3, "milestone.achieved", "2026-03-10T12:00:00Z",
               {**cid, "milestone": "onboarding_completed"}),
        _event(4, "usage.reported", "2026-03-31T23:00:00Z",
               {**cid, "currency": "USD", "metric": "api_calls", "quantity": "1000000",
                "revenue": "8000.00", "period_start": "2026-03-01", "period_end": "2026-03-31"}),
        _event(5, "subscription.expanded", "2026-03-20T08:00:00Z",
               {**cid, "currency": "USD", "delta_arr": "30000.00", "effective_date": "2026-03-20"}),
        _event(6, "referral.qualified", "2026-03-05T08:00:00Z",
               {"partner_id": "P-ACME", "lead_id": "L-7"}),
        _event(7, "comarketing.completed", "2026-03-12T08:00:00Z",
               {"partner_id": "P-ACME", "activity": "webinar", "currency": "USD",
                "spend": "4000.00"}),
        _event(8, "usage.reported", "2026-03-31T23:30:00Z",
               {"customer_id": "C-200", "currency": "USD", "metric": "seats", "quantity": "50",
                "revenue": "2000.00", "period_start": "2026-03-01", "period_end": "2026-03-31"}),
        _event(9, "subscription.churned", "2026-03-28T00:00:00Z",
               {"customer_id": "C-200", "effective_date": "2026-03-28", "reason": "budget"}),
        _event(10, "milestone.achieved", "2026-03-15T00:00:00Z",
               {"customer_id": "C-200", "milestone": "activated"}),
        _event(11, "adjustment.posted", "2026-03-30T00:00:00Z",
               {"partner_id": "P-ACME", "currency": "USD", "amount": "-50.00",
                "reason": "duplicate MDF claim", "approved_by": "ops@trailpay.dev"}),
        _event(12, "usage.reported", "2026-02-28T23:00:00Z",
               {**cid, "currency": "USD", "metric": "api_calls", "quantity": "500000",
                "revenue": "4000.00", "period_start": "2026-02-01", "period_end": "2026-02-28"}),
    ]


async def _post_in_order(c: httpx.AsyncClient, dsn: str, events: list[dict],
                         timeout_seconds: float = 30.0) -> None:
    """Post each event and wait until it is settled (journal and entries are written in
    one transaction, so a journaled event's entries are all there to count)."""
    async with connection(dsn) as pg:
        for event in sorted(events, key=lambda e: e["time"]):
            r = await c.post("/v1/events", json=event,
                             headers={"Content-Type": "application/cloudevents+json"})
            r.raise_for_status()
            deadline = time.monotonic() + timeout_seconds
            while not await ledger_entries.settled(pg, event["source"], event["id"]):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"event {event['id']} was not applied in {timeout_seconds:.0f} s")
                await asyncio.sleep(0.05)


def load_demo(gateway: str, token: str, dsn: str, partner: str = "P-ACME",
              month: str = "2026-03") -> dict:
    """dsn: the database the services write (asyncpg form), to see each event settle."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as c:
        c.put("/v1/plans/reseller-standard/versions/1", content=PLAN.read_bytes(),
              headers={"Content-Type": "application/yaml"}).raise_for_status()
        for pid, ptype in (("P-ACME", "reseller"), ("P-BOLT", "integrator")):
            c.put(f"/v1/partners/{pid}", json={"type": ptype, "plan_id": "reseller-standard",
                                               "payment": {"method": "sepa", "iban": "DE89…"}}
                  ).raise_for_status()

    async def post() -> None:
        async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=30) as ac:
            await _post_in_order(ac, dsn, demo_events())

    asyncio.run(post())
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as c:
        statement = c.get(f"/v1/partners/{partner}/statements/{month}").json()
    print(f"\nStatement for {partner}, {month}:")
    for b in statement.get("opening", []):
        print(f"  opening {b['currency']}: payable {b['payable']}  pending {b['pending']}  held {b['held']}")
    for ln in statement.get("lines", []):
        print(f"  {ln['date']}  {ln['bucket']:<12} {ln['amount']:>12}  {ln['explanation']}")
    for b in statement.get("closing", []):
        print(f"  closing {b['currency']}: payable {b['payable']}  pending {b['pending']}  "
              f"held {b['held']}  clawed back {b['clawed_back']}")
    return statement
