"""SIGTERM drains (issue 14): a ledger or accrual process asked to stop under load
finishes the batch in hand, commits its effect and its offsets, and exits 0; what it
had not polled yet is consumed by the next process, nothing lost and nothing twice."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.ledger.main import run as run_ledger
from tests.integration.helpers import (
    cloud_event, deal, eventually, service_process, setup_programme, uid,
)
from trailpay.adapters.db import raw
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration

DEALS = 300


def _own(settings):
    suffix = uid("term")
    return settings.model_copy(update={
        "topic_events": f"trailpay.events.{suffix}", "topic_ledger": f"trailpay.ledger.{suffix}",
        "group_ledger": f"ledger-{suffix}", "group_accrual": f"accrual-{suffix}",
        "metrics_port": free_port()})


async def _send_deals(own, partners: list[str], source: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap_servers,
                                enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        for i in range(DEALS):
            event = cloud_event("deal.closed", deal(uid("C"), [(partners[i % 2], "1")]),
                                source=source)
            await producer.send(own.topic_events, orjson.dumps(event),
                                key=event["data"]["customer_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _committed(own, topic: str, group: str) -> int:
    """How many records of `topic` the group has committed, over every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=own.kafka_bootstrap_servers, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        total = 0
        for p in range(own.topic_partitions):
            total += (await consumer.committed(TopicPartition(topic, p))) or 0
        return total
    finally:
        await consumer.stop()


async def _count(engine, sql: str, *args) -> int:
    async with engine.connect() as conn:
        return await (await raw(conn)).fetchval(sql, *args)


async def _terminate(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 30)


async def test_sigterm_drains_the_ledger_and_exits_0(engine, settings, client):
    _, partners = await setup_programme(client, 2)
    own, source = _own(settings), uid("crm.term")
    journaled = ("SELECT count(*) FROM journal WHERE source = $1", source)
    await _send_deals(own, partners, source)
    proc = service_process("ledger", own, batch_max=20)
    try:
        await eventually(lambda: _at_least(engine, journaled, DEALS // 4), timeout=60,
                         interval=0.02)
        assert await _terminate(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    done = await _count(engine, *journaled)
    assert done < DEALS, "stopped too late to prove anything"
    # The batch in hand was finished and its offsets committed: exactly what is journaled,
    # so the next consumer starts where this one's effect ends (the accrual's test below
    # restarts one and counts every entry once).
    assert await _committed(own, own.topic_events, own.group_ledger) == done


async def test_sigterm_drains_the_accrual_and_exits_0(engine, settings, client):
    _, partners = await setup_programme(client, 2)
    own, source = _own(settings), uid("crm.term")
    applied = ("SELECT count(*) FROM accrual_applied WHERE partner_id = ANY($1::text[])",
               partners)
    stop = asyncio.Event()
    ledger = asyncio.create_task(run_ledger(own, stop))
    try:
        await _send_deals(own, partners, source)
        proc = service_process("accrual", own, batch_max=10)
        try:
            await eventually(lambda: _at_least(engine, applied, DEALS // 4), timeout=60,
                             interval=0.02)
            assert await _terminate(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        done = await _count(engine, *applied)
        assert done < DEALS, "stopped too late to prove anything"
        assert await _committed(own, own.topic_ledger, own.group_accrual) == done
        proc = service_process("accrual", own, batch_max=200)
        try:
            await eventually(lambda: _at_least(engine, applied, DEALS), timeout=60)
            await asyncio.sleep(0.5)
            assert await _terminate(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        stop.set()
        await ledger
    assert await _count(engine, *applied) == DEALS
    groups = await _count(engine, "SELECT count(DISTINCT group_id) FROM postings "
                                  "WHERE partner_id = ANY($1::text[])", partners)
    assert groups == DEALS


async def _at_least(engine, query: tuple, n: int) -> bool:
    return await _count(engine, *query) >= n
