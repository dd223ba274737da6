"""Issue 15: several ledgers in one consumer group. One is killed (SIGKILL) mid-stream, its
partitions move to the other, and nothing is lost, doubled or forked: every event is
journaled once, every stream's hash chain verifies, and a rebuild equals live."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from decimal import Decimal

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.accrual.main import run as run_accrual
from tests.integration.helpers import (
    cloud_event, deal, eventually, service_process, setup_programme, uid,
)
from trailpay.adapters.db import raw
from trailpay.adapters.embedded import free_port
from trailpay.adapters.journal_store import verify
from trailpay.adapters.rebuild import rebuild

pytestmark = pytest.mark.integration

DEALS = 600


def _ledger_process(settings) -> subprocess.Popen:
    return service_process("ledger", settings, batch_max=25)


async def _journaled(engine, topic: str) -> tuple[int, int]:
    """(journal rows, distinct events) of this test's input topic."""
    async with engine.connect() as conn:
        pg = await raw(conn)
        row = await pg.fetchrow(
            "SELECT count(*), count(DISTINCT (source, event_id)) FROM journal "
            "WHERE stream LIKE $1", f"{topic}/%")
        return row[0], row[1]


async def _applied(engine, partners: list[str]) -> int:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval(
            "SELECT count(*) FROM accrual_applied WHERE partner_id = ANY($1::text[])", partners)


async def test_a_ledger_killed_mid_stream_hands_its_partitions_over_cleanly(
        client, engine, settings):
    _, partners = await setup_programme(client, n_partners=2)
    suffix = uid("ledgers")
    own = settings.model_copy(update={
        "topic_events": f"trailpay.events.{suffix}", "topic_ledger": f"trailpay.ledger.{suffix}",
        "group_ledger": f"ledger-{suffix}", "group_accrual": f"accrual-{suffix}",
        "metrics_port": free_port(), "topic_partitions": 4})
    first, second = _ledger_process(own), _ledger_process(own)
    stop = asyncio.Event()
    accrual = asyncio.create_task(run_accrual(own, stop))
    expected = {p: Decimal(0) for p in partners}
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap_servers,
                                enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        for i in range(DEALS):
            acv = Decimal(1000 + 37 * i)
            p = partners[i % 2]
            expected[p] += min(acv * Decimal("0.20"), Decimal("12000.00"))
            event = cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv=f"{acv}.00"))
            await producer.send(own.topic_events, orjson.dumps(event),
                                key=event["data"]["customer_id"].encode())
        await producer.flush()

        async def some_journaled() -> bool:
            return (await _journaled(engine, own.topic_events))[0] >= DEALS // 4
        await eventually(some_journaled, timeout=90, interval=0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert (await _journaled(engine, own.topic_events))[0] < DEALS, "killed too late"

        async def all_applied() -> bool:
            return await _applied(engine, partners) >= DEALS
        await eventually(all_applied, timeout=180)
        await asyncio.sleep(1.0)  # a doubled batch would show up now
    finally:
        await producer.stop()
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        stop.set()
        await asyncio.gather(accrual, return_exceptions=True)

    assert await _journaled(engine, own.topic_events) == (DEALS, DEALS)  # once each
    assert await _applied(engine, partners) == DEALS
    async with engine.connect() as conn:
        pg = await raw(conn)
        streams = await pg.fetch("SELECT DISTINCT stream FROM journal WHERE stream LIKE $1",
                                 f"{own.topic_events}/%")
        chains = await verify(conn)
        rows = await pg.fetch(
            "SELECT partner_id, sum(amount) FROM balances WHERE partner_id = ANY($1::text[]) "
            "AND bucket IN ('pending', 'payable') GROUP BY partner_id", partners)
    assert len(streams) == 4  # one chain per partition, whichever ledger wrote it
    assert all(chains[s["stream"]] is None for s in streams)
    assert {r[0]: r[1] for r in rows} == expected
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        result = await rebuild(conn, check=True, workers=1)
    assert result.differences == []
