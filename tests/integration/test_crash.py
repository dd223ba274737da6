"""A killed and restarted accrual consumer finishes with the same balances as an
uninterrupted run: progress and effect commit together, offsets are only hints."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from decimal import Decimal

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.ledger.main import run as run_ledger
from tests.integration.helpers import (
    cloud_event, deal, eventually, service_process, setup_programme, uid,
)
from trailpay.adapters.db import raw
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration

DEALS = 400


def _accrual_process(settings) -> subprocess.Popen:
    return service_process("accrual", settings)


async def _applied(engine, partners: list[str]) -> int:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval(
            "SELECT count(*) FROM accrual_applied WHERE partner_id = ANY($1::text[])", partners)


async def test_killed_accrual_consumer_loses_nothing_and_doubles_nothing(client, engine, settings):
    _, partners = await setup_programme(client, n_partners=3)
    suffix = uid("crash")
    own = settings.model_copy(update={
        "topic_events": f"trailpay.events.{suffix}", "topic_ledger": f"trailpay.ledger.{suffix}",
        "group_ledger": f"ledger-{suffix}", "group_accrual": f"accrual-{suffix}",
        "metrics_port": free_port()})
    stop = asyncio.Event()
    ledger = asyncio.create_task(run_ledger(own, stop))

    expected = {p: Decimal(0) for p in partners}
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap_servers,
                                enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        for i in range(DEALS):
            acv = Decimal(1000 + 137 * i)
            a, b = partners[i % 3], partners[(i + 1) % 3]
            # 20% of ACV capped at 12,000.00, split 70/30 and rounded half-even.
            amount = min(acv * Decimal("0.20"), Decimal("12000.00"))
            expected[a] += (amount * Decimal("0.7")).quantize(Decimal("0.01"))
            expected[b] += (amount * Decimal("0.3")).quantize(Decimal("0.01"))
            event = cloud_event("deal.closed", deal(uid("C"), [(a, "0.7"), (b, "0.3")],
                                                    acv=f"{acv}.00"))
            await producer.send(own.topic_events, orjson.dumps(event),
                                key=event["data"]["customer_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()

    total = DEALS * 2
    kills = 0
    for threshold in (total // 5, total // 2):
        proc = _accrual_process(own)
        await eventually(lambda t=threshold: _at_least(engine, partners, t), timeout=60, interval=0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        assert await _applied(engine, partners) < total, "killed too late to prove anything"
    proc = _accrual_process(own)
    try:
        await eventually(lambda: _at_least(engine, partners, total), timeout=90)
        await asyncio.sleep(1.0)  # give a wrongly re-applied batch the chance to show up
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        stop.set()
        await ledger

    assert kills == 2
    assert await _applied(engine, partners) == total
    async with engine.connect() as conn:
        pg = await raw(conn)
        rows = await pg.fetch(
            "SELECT partner_id, sum(amount) FROM balances WHERE partner_id = ANY($1::text[]) "
            "GROUP BY partner_id", partners)
        dead = await pg.fetch(
            "SELECT reason FROM dead_letters d JOIN accrual_applied a ON a.outcome = 'dead_letter' "
            "AND d.stage = 'accrual' AND a.partner_id = ANY($1::text[]) LIMIT 3", partners)
        groups = await pg.fetchval(
            "SELECT count(DISTINCT group_id) FROM postings WHERE partner_id = ANY($1::text[])",
            partners)
    assert [d[0] for d in dead] == []
    assert {r[0]: r[1] for r in rows} == expected
    assert groups == total


async def _at_least(engine, partners, n):
    return await _applied(engine, partners) >= n
