"""The spine, end to end on real PostgreSQL and a real broker:
HTTP/Kafka -> journal -> attribution -> accrual -> balances and statement."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.helpers import (
    balances, cloud_event, deal, eventually, post_events, setup_programme, uid,
)
from trailpay.adapters.db import raw

pytestmark = pytest.mark.integration


async def _groups(engine, partner_id: str) -> list[tuple]:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return [tuple(r) for r in await pg.fetch(
            "SELECT group_id, rule_id, amount, bucket FROM postings WHERE partner_id = $1 "
            "AND account <> 'company:commissions' ORDER BY group_id", partner_id)]


async def test_deal_over_http_becomes_commission_on_balances_and_statement(client, engine):
    _, (p1, p2) = await setup_programme(client)
    customer = uid("C")
    # 20% of ACV 100,000.00 = 20,000.00, capped at 12,000.00 per deal, then split 60/40.
    await post_events(client, [cloud_event("deal.closed", deal(customer, [(p1, "0.6"), (p2, "0.4")]),
                                           time_="2026-02-01T10:00:00Z")])

    async def settled():
        b1, b2 = await balances(client, p1), await balances(client, p2)
        return (b1, b2) if b1 and b2 else None

    b1, b2 = await eventually(settled)
    # hold_days 30 from 2026-02-01 has passed by today: the money is payable.
    assert b1["currency"] == "USD" and b1["payable"] == "7200.00" and b1["pending"] == "0.00"
    assert b2["payable"] == "4800.00"

    r = await client.get(f"/v1/partners/{p1}/statements/2026-02")
    assert r.status_code == 200
    st = r.json()
    commission = [ln for ln in st["lines"] if ln["rule_id"] == "anchor"]
    assert len(commission) == 1
    line = commission[0]
    assert line["amount"] == "7200.00" and line["share"] == "0.6" and line["rule_kind"] == "upfront"
    assert line["base"] == "100000" and line["rate"] == "0.2" and line["unrounded"] == "7200"
    assert "12,000.00" in line["explanation"] and "60%" in line["explanation"]
    assert st["opening"] == [] and st["closing"][0]["pending"] == "7200.00"
    march = (await client.get(f"/v1/partners/{p1}/statements/2026-03")).json()
    assert march["opening"][0]["pending"] == "7200.00"
    assert march["closing"][0]["payable"] == "7200.00"  # the 30-day hold ended on 2026-03-03
    assert any(ln["event_type"] == "hold.ended" for ln in march["lines"])


async def test_same_event_twice_over_http_and_kafka_gives_one_posting(client, engine, settings):
    _, (p1, _) = await setup_programme(client)
    customer = uid("C")
    event = cloud_event("deal.closed", deal(customer, [(p1, "1")]))
    await post_events(client, [event])
    await post_events(client, [event])
    # A marker fact about the same customer, sent last on the same key: once the
    # accrual has applied it, every copy before it has been through the pipeline.
    marker = cloud_event("usage.reported", {
        "customer_id": customer, "currency": "USD", "metric": "seats", "quantity": "1",
        "revenue": "10.00", "period_start": "2026-02-01", "period_end": "2026-02-28"})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False)
    await producer.start()
    try:
        for message in (event, event, marker):
            await producer.send_and_wait(settings.topic_events, orjson.dumps(message),
                                         key=customer.encode())
    finally:
        await producer.stop()

    async def marker_applied():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchval(
                "SELECT count(*) FROM accrual_applied a JOIN journal j ON j.seq = a.journal_seq "
                "WHERE j.event_id = $1", marker["id"])

    await eventually(marker_applied)
    groups = await _groups(engine, p1)
    assert len(groups) == 1 and groups[0][2] == 12000
    async with engine.connect() as conn:
        pg = await raw(conn)
        n = await pg.fetchval("SELECT count(*) FROM journal WHERE source = $1 AND event_id = $2",
                              event["source"], event["id"])
    assert n == 1


async def test_conflicting_duplicate_is_dead_lettered(client, engine):
    _, (p1, _) = await setup_programme(client)
    event = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
    await post_events(client, [event])
    altered = {**event, "data": {**event["data"], "acv": "999999.00"}}
    await post_events(client, [altered])

    async def dead():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchrow(
                "SELECT reason, field, stage FROM dead_letters WHERE event_id = $1", event["id"])

    row = await eventually(dead)
    assert row["reason"].startswith("conflict") and row["stage"] == "ledger"
    b = await eventually(lambda: balances(client, p1))
    assert b["payable"] == "12000.00"  # the first body stands; nothing half-applied


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda e: e["data"].__setitem__("acv", 1000.5), "data.acv"),
    (lambda e: e["data"].pop("customer_id"), "data.customer_id"),
    (lambda e: e.pop("id"), "id"),
    (lambda e: e["data"].__setitem__("start_date", "01/02/2026"), "data.start_date"),
    (lambda e: e.__setitem__("type", "deal.opened"), "type"),
])
async def test_invalid_event_gets_problem_json_naming_the_field(client, mutate, field):
    event = cloud_event("deal.closed", deal(uid("C"), [("P-x", "1")]))
    mutate(event)
    r = await client.post("/v1/events", content=orjson.dumps(event),
                          headers={"Content-Type": "application/cloudevents+json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.text


async def test_unknown_partner_is_dead_lettered_with_reason(client, engine):
    event = cloud_event("deal.closed", deal(uid("C"), [(uid("P-ghost"), "1")]))
    await post_events(client, [event])

    async def dead():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchrow("SELECT reason, field FROM dead_letters WHERE event_id = $1",
                                     event["id"])

    row = await eventually(dead)
    assert "unknown partner" in row["reason"] and row["field"] == "data.partners[0].partner_id"


async def test_fact_before_its_deal_is_parked_then_applied(client, engine):
    _, (p1, _) = await setup_programme(client)
    customer = uid("C")
    churn = cloud_event("subscription.churned", {"customer_id": customer,
                        "effective_date": "2026-03-01", "reason": "budget"},
                        time_="2026-03-01T00:00:00Z")
    await post_events(client, [churn])
    await post_events(client, [cloud_event("deal.closed", deal(customer, [(p1, "1")]))])

    async def entries():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchval(
                "SELECT count(*) FROM ledger_entries e JOIN journal j ON j.seq = e.journal_seq "
                "WHERE e.partner_id = $1 AND j.type = 'subscription.churned'", p1)

    assert await eventually(entries) == 1


async def test_binary_mode_and_structured_mode_are_one_event(client, engine):
    """The same event over HTTP binary mode (ce-* headers) and structured mode is journaled once."""
    _, (p1, _) = await setup_programme(client)
    event = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
    headers = {"ce-specversion": "1.0", "ce-id": event["id"], "ce-source": event["source"],
               "ce-type": event["type"], "ce-time": event["time"],
               "Content-Type": "application/json"}
    r = await client.post("/v1/events", content=orjson.dumps(event["data"]), headers=headers)
    assert r.status_code == 202 and r.json()["ids"] == [{"source": event["source"], "id": event["id"]}]
    await post_events(client, [event])
    b = await eventually(lambda: balances(client, p1))
    assert b["payable"] == "12000.00"

    async def journaled():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchval("SELECT count(*) FROM journal WHERE event_id = $1", event["id"])

    assert await eventually(journaled) == 1
    async with engine.connect() as conn:
        pg = await raw(conn)
        assert await pg.fetchval("SELECT count(*) FROM dead_letters WHERE event_id = $1",
                                 event["id"]) == 0
