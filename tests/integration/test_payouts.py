"""The payout loop on real PostgreSQL and a real broker, every amount checked to the cent:
events → balances → payout run (repeated: idempotent) → payables → paid and failed
confirmations (HTTP and Kafka) → statements → dispute hold → resolution → adjustment.

Plan: upfront 10% of ACV, referral 200.00, hold 30 days; payout minimum 100.00 USD and
50.00 EUR, none in JPY (JPY is never paid, never converted).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import jsonschema_rs
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from trailpay.adapters import api_keys, payout_runs
from trailpay.adapters.cloudevents import SCHEMAS
from trailpay.adapters.db import raw

pytestmark = pytest.mark.integration

PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "0.10"}}
  - {{id: refer, kind: referral, amount: "200.00"}}
payout: {{minimum: {{USD: "100.00", EUR: "50.00"}}, hold_days: 30, cadence: monthly}}
"""
PAYMENT = {"method": "sepa", "iban": "DE89370400440532013000", "holder": "Acme GmbH"}
ZERO = {"held": "0.00", "pending": "0.00", "payable": "0.00", "in_payout": "0.00",
        "paid": "0.00", "forfeited": "0.00", "clawed_back": "0.00"}


async def programme(client, payment: dict | None = PAYMENT, n: int = 2) -> list[str]:
    plan_id = uid("plan")
    r = await client.put(f"/v1/plans/{plan_id}/versions/1",
                         content=PLAN.format(plan_id=plan_id).encode(),
                         headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    partners = [uid("P") for _ in range(n)]
    for i, p in enumerate(partners):
        r = await client.put(f"/v1/partners/{p}", json={
            "type": "reseller", "plan_id": plan_id, "payment": payment if i == 0 else None})
        assert r.status_code == 201, r.text
    return partners


async def balances(client, partner_id: str) -> dict[str, dict[str, str]]:
    r = await client.get(f"/v1/partners/{partner_id}/balances")
    assert r.status_code == 200, r.text
    return {b["currency"]: {k: v for k, v in b.items() if k != "currency"}
            for b in r.json()["balances"]}


def expect(**buckets: str) -> dict[str, str]:
    return {**ZERO, **buckets}


async def settle(client, partner_id: str, want: dict[str, dict[str, str]]) -> None:
    """Wait until the partner's balances are exactly `want` (currency -> buckets)."""
    async def check():
        got = await balances(client, partner_id)
        return got == want or None
    try:
        await eventually(check, timeout=20)
    except AssertionError:
        assert await balances(client, partner_id) == want


async def applied(engine, event_id: str) -> bool:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return bool(await pg.fetchval(
            "SELECT count(*) FROM accrual_applied a JOIN journal j ON j.seq = a.journal_seq "
            "WHERE j.event_id = $1", event_id))


async def payouts_of(engine, partner_id: str) -> dict[str, tuple[str, str, str | None]]:
    async with engine.connect() as conn:
        pg = await raw(conn)
        rows = await pg.fetch("SELECT payout_id, amount, status, reference FROM payouts "
                              "WHERE partner_id = $1", partner_id)
    return {r[0]: (f"{r[1]:.2f}", r[2], r[3]) for r in rows}


async def requested_on_topic(settings, payout_ids: set[str]) -> dict[str, dict]:
    """payout.requested messages on trailpay.payouts for these payouts (read from the start)."""
    consumer = AIOKafkaConsumer(settings.topic_payouts, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[str, dict] = {}
    try:
        async def poll():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    msg = orjson.loads(r.value)
                    if msg["data"]["payout_id"] in payout_ids:
                        found[msg["data"]["payout_id"]] = {**msg, "key": r.key.decode()}
            return set(found) == payout_ids
        await eventually(poll, timeout=20)
    finally:
        await consumer.stop()
    return found


def csv_closes(text: str) -> None:
    """In the CSV: opening + lines = closing, per currency and bucket."""
    rows = list(csv.DictReader(io.StringIO(text)))
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    closing: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        key = (row["currency"], row["bucket"])
        if row["section"] in ("opening", "line"):
            totals[key] += Decimal(row["amount"])
        else:
            closing[key] = Decimal(row["amount"])
    assert closing and all(totals[k] == v for k, v in closing.items()), (totals, closing)


async def test_the_payout_loop_from_events_to_adjustment(client, engine, settings):
    p1, p2 = await programme(client)
    today = datetime.now(UTC).date()
    cust_usd, cust_eur = uid("C"), uid("C")
    usd_deal = deal(cust_usd, [(p1, "1")], acv="100000.00", start="2026-02-02")
    eur_deal = {**deal(cust_eur, [(p1, "1")], acv="30000.00", start="2026-02-10"), "currency": "EUR"}
    await post_events(client, [
        # 10% = 10,000.00 USD, pending until 2026-03-04
        cloud_event("deal.closed", usd_deal, time_="2026-02-02T09:00:00Z"),
        # 10% = 3,000.00 EUR, pending until 2026-03-12
        cloud_event("deal.closed", eur_deal, time_="2026-02-10T09:00:00Z"),
        # ops adjustment in JPY: payable at once; the plan has no JPY minimum
        cloud_event("adjustment.posted", {"partner_id": p1, "currency": "JPY", "amount": "5000",
                                          "reason": "event fee", "approved_by": "ops"},
                    time_="2026-03-20T09:00:00Z"),
        # p2: 10% of 500.00 = 50.00 USD, under the USD minimum of 100.00
        cloud_event("deal.closed", deal(uid("C"), [(p2, "1")], acv="500.00", start="2026-02-05"),
                    time_="2026-02-05T09:00:00Z"),
    ])
    # 1. Balances: the holds have ended by now, everything is payable.
    await settle(client, p1, {"USD": expect(payable="10000.00"), "EUR": expect(payable="3000.00"),
                              "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}})
    await settle(client, p2, {"USD": expect(payable="50.00")})

    # 2. A payout run as of 2026-03-31: USD and EUR for p1; JPY (no minimum) and p2 (under
    #    the minimum) stay payable.
    r = await client.post("/v1/payout-runs", json={"as_of": "2026-03-31", "partner_ids": [p1, p2]})
    assert r.status_code == 202, r.text
    assert r.json() == {"run_id": "run-2026-03-31", "as_of": "2026-03-31", "partners": 2}
    usd_id, eur_id = f"run-2026-03-31:{p1}:USD", f"run-2026-03-31:{p1}:EUR"
    await settle(client, p1, {"USD": expect(in_payout="10000.00"),
                              "EUR": expect(in_payout="3000.00"),
                              "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}})
    await settle(client, p2, {"USD": expect(payable="50.00")})
    assert await payouts_of(engine, p1) == {usd_id: ("10000.00", "in_payout", None),
                                            eur_id: ("3000.00", "in_payout", None)}
    assert await payouts_of(engine, p2) == {}

    # payout.requested went out on trailpay.payouts, keyed by partner, after commit.
    sent = await requested_on_topic(settings, {usd_id, eur_id})
    assert sent[usd_id]["key"] == p1 and sent[usd_id]["type"] == "payout.requested"
    assert sent[usd_id]["data"]["amount"] == "10000.00" and sent[eur_id]["data"]["currency"] == "EUR"
    assert sent[usd_id]["data"]["payment"] == PAYMENT
    contract = jsonschema_rs.validator_for(orjson.loads(
        (SCHEMAS / "messages" / "payout.requested.json").read_bytes()), validate_formats=True)
    for message in sent.values():
        contract.validate({k: v for k, v in message.items() if k != "key"})

    # 3. The same run again creates nothing: one journal event, no new payout. A referral
    #    sent after it on the same partner key shows the pipeline got past the repeat.
    r = await client.post("/v1/payout-runs", json={"as_of": "2026-03-31", "partner_ids": [p1]})
    assert r.status_code == 202
    referral = cloud_event("referral.qualified", {"partner_id": p1, "lead_id": uid("L")},
                           time_="2026-04-02T09:00:00Z")  # 200.00 pending until 2026-05-02
    await post_events(client, [referral])
    await eventually(lambda: applied(engine, referral["id"]))
    async with engine.connect() as conn:
        pg = await raw(conn)
        assert await pg.fetchval("SELECT count(*) FROM journal WHERE event_id = $1",
                                 f"payout-run:2026-03-31:{p1}") == 1
    assert len(await payouts_of(engine, p1)) == 2
    await settle(client, p1, {"USD": expect(payable="200.00", in_payout="10000.00"),
                              "EUR": expect(in_payout="3000.00"),
                              "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}})

    # 4. Payables: the ERP pages through them in a stable order, with payment details.
    r = await client.get("/v1/payables", params={"partner_id": p1, "limit": 1})
    page1 = r.json()
    assert r.status_code == 200 and len(page1["items"]) == 1 and page1["next_cursor"]
    item = page1["items"][0]
    assert item["payout_id"] == eur_id and item["amount"] == "3000.00"
    assert item["partner_id"] == p1 and item["payment"] == PAYMENT and item["created_at"]
    page2 = (await client.get("/v1/payables", params={"partner_id": p1, "limit": 1,
                                                      "cursor": page1["next_cursor"]})).json()
    assert [i["payout_id"] for i in page2["items"]] == [usd_id] and page2["next_cursor"] is None
    assert page2["items"][0]["amount"] == "10000.00"
    bad = await client.get("/v1/payables", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    everything = (await client.get("/v1/payables", params={"limit": 1000})).json()["items"]
    assert {usd_id, eur_id} <= {i["payout_id"] for i in everything}

    # 5. The ERP confirms the USD payout over HTTP: in_payout → paid.
    r = await client.post(f"/v1/payouts/{usd_id}/confirmation",
                          json={"status": "paid", "reference": "BANK-0001"})
    assert r.status_code == 202, r.text
    await settle(client, p1, {"USD": expect(payable="200.00", paid="10000.00"),
                              "EUR": expect(in_payout="3000.00"),
                              "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}})
    again = await client.post(f"/v1/payouts/{usd_id}/confirmation",
                              json={"status": "paid", "reference": "BANK-0001"})
    assert again.status_code == 200 and again.json()["changed"] is False
    contra = await client.post(f"/v1/payouts/{usd_id}/confirmation",
                               json={"status": "failed", "reference": "BANK-0001"})
    assert contra.status_code == 409
    assert contra.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/payables", params={"partner_id": p1})).json()["items"][0][
        "payout_id"] == eur_id

    # 6. The ERP reports the EUR payout failed on Kafka, without naming the partner: the
    #    ledger finds the payout's partner; the money is payable again. An unknown payout
    #    is dead-lettered with the reason.
    failed = cloud_event("payout.failed", {"payout_id": eur_id, "reference": "SEPA-RJCT-77"},
                         source="erp.test", time_=f"{today.isoformat()}T08:00:00Z")
    ghost = cloud_event("payout.confirmed", {"payout_id": "run-2026-03-31:nobody:USD",
                                             "reference": "X"}, source="erp.test")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False)
    await producer.start()
    try:
        for message in (failed, ghost):
            await producer.send_and_wait(settings.topic_events, orjson.dumps(message), key=b"")
    finally:
        await producer.stop()
    await settle(client, p1, {"USD": expect(payable="200.00", paid="10000.00"),
                              "EUR": expect(payable="3000.00"),
                              "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}})
    assert (await payouts_of(engine, p1))[eur_id] == ("3000.00", "failed", "SEPA-RJCT-77")

    async def dead():
        async with engine.connect() as conn:
            pg = await raw(conn)
            return await pg.fetchrow("SELECT reason, field FROM dead_letters WHERE event_id = $1",
                                     ghost["id"])
    row = await eventually(dead)
    assert row["reason"].startswith("unknown payout") and row["field"] == "data.payout_id"
    r = await client.post(f"/v1/payouts/{eur_id}/confirmation",
                          json={"status": "paid", "reference": "late"})
    assert r.status_code == 409
    assert (await client.get("/v1/payables", params={"partner_id": p1})).json()["items"] == []

    # 7. Statements: March shows the run's postings and payouts; JSON, CSV and HTML agree.
    march = (await client.get(f"/v1/partners/{p1}/statements/2026-03")).json()
    runs = [ln for ln in march["lines"] if ln["rule_kind"] == "payout"]
    assert {(ln["currency"], ln["bucket"], ln["amount"]) for ln in runs} == {
        ("USD", "payable", "-10000.00"), ("USD", "in_payout", "10000.00"),
        ("EUR", "payable", "-3000.00"), ("EUR", "in_payout", "3000.00")}
    assert all(ln["date"] == "2026-03-31" and ln["event_type"] == "payout.run_requested"
               for ln in runs)
    closing = {b["currency"]: b for b in march["closing"]}
    assert closing["USD"]["in_payout"] == "10000.00" and closing["USD"]["payable"] == "0.00"
    assert {p["payout_id"]: p["status"] for p in march["payouts"]} == {usd_id: "paid",
                                                                       eur_id: "failed"}
    r = await client.get(f"/v1/partners/{p1}/statements/2026-03", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    csv_closes(r.text)
    r = await client.get(f"/v1/partners/{p1}/statements/2026-03", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert usd_id in r.text and "10,000.00" in r.text

    # 8. The partner disputes the USD deal's line with its own key: its payouts are held.
    line = next(ln for ln in (await client.get(f"/v1/partners/{p1}/statements/2026-02")).json()[
        "lines"] if ln["deal_id"] == usd_deal["deal_id"])
    async with engine.begin() as conn:
        _, token = await api_keys.create(conn, uid("partner-key"), ["statements:read"], p1)
    own = {"Authorization": f"Bearer {token}"}
    r = await client.post("/v1/disputes", headers=own, json={
        "partner_id": p1, "posting_id": line["posting_id"], "reason": "rate should be 12%"})
    assert r.status_code == 202, r.text
    dispute_id = r.json()["dispute_id"]

    async def opened():
        d = await client.get(f"/v1/disputes/{dispute_id}", headers=own)
        return d.status_code == 200 and d.json()["status"] == "open"
    await eventually(opened)
    # (A run as of today sorts after the dispute, opened today: design §4 orders commands by
    # their own time, so a run as of an earlier day would not be held by it.)
    r = await client.post("/v1/payout-runs", json={"as_of": today.isoformat(),
                                                   "partner_ids": [p1]})
    assert r.status_code == 202
    await eventually(lambda: applied(engine, f"payout-run:{today.isoformat()}:{p1}"))
    held = {"USD": expect(payable="200.00", paid="10000.00"), "EUR": expect(payable="3000.00"),
            "JPY": {k: "0" for k in ZERO} | {"payable": "5000"}}
    assert await balances(client, p1) == held  # nothing paid while the dispute is open
    assert len(await payouts_of(engine, p1)) == 2

    # 9. Ops accept it with a 125.00 USD adjustment: payable at once.
    r = await client.post(f"/v1/disputes/{dispute_id}/resolution", json={
        "outcome": "accepted",
        "adjustment": {"currency": "USD", "amount": "125.00", "reason": "agreed 12% on renewal"}})
    assert r.status_code == 202, r.text
    await settle(client, p1, {**held, "USD": expect(payable="325.00", paid="10000.00")})
    d = (await client.get(f"/v1/disputes/{dispute_id}")).json()
    assert d["status"] == "accepted" and d["adjustment"]["amount"] == "125.00"
    assert d["adjustment"]["posting_id"]
    same = await client.post(f"/v1/disputes/{dispute_id}/resolution", json={
        "outcome": "accepted",
        "adjustment": {"currency": "USD", "amount": "125.00", "reason": "agreed 12% on renewal"}})
    assert same.status_code == 200
    other = await client.post(f"/v1/disputes/{dispute_id}/resolution", json={"outcome": "rejected"})
    assert other.status_code == 409

    # The run held today stays today's run (its id is the day's): the money waits for the
    # next day's run, payable.
    r = await client.post("/v1/payout-runs", json={"as_of": today.isoformat(), "partner_ids": [p1]})
    assert r.status_code == 202
    await asyncio.sleep(1)
    assert await balances(client, p1) == {**held, "USD": expect(payable="325.00", paid="10000.00")}

    # 10. This month's statement tells the rest of the story, and still closes.
    month = today.strftime("%Y-%m")
    now = (await client.get(f"/v1/partners/{p1}/statements/{month}")).json()
    kinds = [(ln["rule_id"], ln["bucket"], ln["amount"]) for ln in now["lines"]]
    assert ("payout", "paid", "10000.00") in kinds and ("payout", "payable", "3000.00") in kinds
    adjustment = next(ln for ln in now["lines"] if ln["rule_id"] == "dispute")
    assert adjustment["amount"] == "125.00" and dispute_id in adjustment["explanation"]
    assert "agreed 12% on renewal" in adjustment["explanation"]
    assert [x["dispute_id"] for x in now["disputes"]] == [dispute_id]
    r = await client.get(f"/v1/partners/{p1}/statements/{month}", headers={"Accept": "text/csv"})
    csv_closes(r.text)

    # 11. The accrual counted it for Prometheus (the services share this process's registry).
    text = (await client.get("/metrics")).text
    for sample in ('trailpay_payouts_total{currency="USD",status="in_payout"}',
                   'trailpay_payouts_total{currency="USD",status="paid"}',
                   'trailpay_payouts_total{currency="EUR",status="failed"}',
                   'trailpay_disputes_total{event="opened"}',
                   'trailpay_disputes_total{event="resolved"}'):
        line = next((ln for ln in text.splitlines() if ln.startswith(sample)), None)
        assert line is not None and float(line.split()[-1]) >= 1, sample


async def test_bad_payout_runs_and_confirmations_are_problems(client):
    (p1,) = await programme(client, n=1)
    tomorrow = date.fromordinal(datetime.now(UTC).date().toordinal() + 1)
    for body, field in [({"as_of": tomorrow.isoformat()}, "body.as_of"),
                        ({"as_of": "2026-02-30"}, "body.as_of"),
                        ({"as_of": "2026-03-31", "partner_ids": [p1, "P-nobody"]},
                         "body.partner_ids")]:
        r = await client.post("/v1/payout-runs", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = await client.post("/v1/payouts/nope/confirmation", json={"status": "paid", "reference": "x"})
    assert r.status_code == 404
    r = await client.post("/v1/payouts/nope/confirmation", json={"status": "sent", "reference": "x"})
    assert r.status_code == 422 and r.json()["field"] == "body.status"


async def test_commands_cannot_come_through_event_intake(client):
    (p1,) = await programme(client, n=1)
    run = cloud_event("payout.run_requested", {"partner_id": p1, "run_id": "run-2026-03-31",
                                               "as_of": "2026-03-31"}, source="trailpay.gateway")
    r = await client.post("/v1/events", content=orjson.dumps(run),
                          headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 422 and r.json()["field"] == "type"
    spoof = cloud_event("referral.qualified", {"partner_id": p1, "lead_id": "L"},
                        source="trailpay.gateway")
    r = await client.post("/v1/events", json=[cloud_event("referral.qualified", {
        "partner_id": p1, "lead_id": "L0"}), spoof],
        headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 422 and r.json()["field"] == "[1].source"


async def test_the_scheduler_requests_the_runs_a_monthly_cadence_makes_due(client, engine,
                                                                            settings):
    (p1,) = await programme(client, n=1)
    await post_events(client, [cloud_event("adjustment.posted", {
        "partner_id": p1, "currency": "USD", "amount": "150.00", "reason": "launch",
        "approved_by": "ops"}, time_="2026-03-05T00:00:00Z")])
    await settle(client, p1, {"USD": expect(payable="150.00")})
    today = datetime.now(UTC).date()
    async with engine.connect() as conn:
        # Enrolled today: not due for last month's run, which ended before it joined.
        assert await payout_runs.due(conn, today, [p1]) == []
        first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
        end = date.fromordinal(first.toordinal() - 1)
        runs = await payout_runs.due(conn, first, [p1])
    assert runs == [(p1, end)]
    # The scheduler's events are the HTTP endpoint's: asked twice, run once.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False)
    await producer.start()
    try:
        await payout_runs.request(producer, settings.topic_events, runs, "scheduler")
        await payout_runs.request(producer, settings.topic_events, runs, "http")
    finally:
        await producer.stop()
    await settle(client, p1, {"USD": expect(in_payout="150.00")})
    await asyncio.sleep(0.3)
    async with engine.connect() as conn:
        assert await payout_runs.due(conn, first, [p1]) == []  # last_run now covers it
        pg = await raw(conn)
        assert await pg.fetchval("SELECT count(*) FROM payouts WHERE partner_id = $1", p1) == 1
