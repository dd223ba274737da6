"""Design §4 end to end: the same facts, shuffled, over Kafka, make the same money.

The scripted programme of test_programme_year (splits, vesting released and forfeited, a
churn clawed back pro rata, renewals crossing a volume tier, a plan version taking over
mid-year) is sent to trailpay.events in a shuffled order, in bursts, on 4 partitions,
while a second accrual process joins the group. The balances must equal the pure core's
fold of the facts in time order, and a rebuild from the journal must equal live.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from prometheus_client import REGISTRY

from tests.integration.helpers import cloud_event, eventually, uid
from tests.integration.test_programme_year import _pure_fold, _script, enrol_programme
from tests.kit import usd_as_of
from trailpay.adapters import kafka
from trailpay.adapters.db import raw
from trailpay.adapters.embedded import free_port
from trailpay.adapters.rebuild import rebuild

pytestmark = pytest.mark.integration


async def _applied_events(engine, ids: list[str]) -> int:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval(
            "SELECT count(DISTINCT j.event_id) FROM accrual_applied a "
            "JOIN journal j ON j.seq = a.journal_seq WHERE j.event_id = ANY($1::text[])", ids)


async def test_shuffled_facts_on_four_partitions_and_two_accruals_make_the_sorted_money(
        client, engine, settings):
    from services.accrual.main import run as run_accrual

    assert settings.topic_partitions >= 4
    docs, types, overrides, (r1, r2, i1) = await enrol_programme(client, "shuffled")
    script = _script({c: uid(c) for c in ("C1", "C2", "C3", "C4")}, r1, r2, i1)
    events = [cloud_event(type_, data, time_=f"{day}T10:00:00Z") for day, type_, data in script]
    # The last deal first, on its own, so that R1's earlier facts are certain to arrive late;
    # then everything else shuffled.
    first = events[-4]
    assert first["type"] == "deal.closed" and first["time"].startswith("2024-08-01")
    rest = [e for e in events if e is not first]
    random.Random(13).shuffle(rest)
    shuffled = [first, *rest]
    assert shuffled != events
    refolds_before = REGISTRY.get_sample_value("trailpay_refolds_total") or 0.0

    stop = asyncio.Event()
    second = asyncio.create_task(run_accrual(settings.model_copy(
        update={"metrics_port": free_port(), "consumer_lanes": 3}), stop))
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for n, burst in enumerate((shuffled[:1], shuffled[1:5], shuffled[5:])):
            for ev in burst:
                key = ev["data"].get("customer_id") or ev["data"].get("partner_id")
                await producer.send(settings.topic_events, orjson.dumps(ev), key=key.encode())
            await producer.flush()
            if n == 0:  # the August deal applied on its own before anything older arrives
                await eventually(lambda: _count_is(engine, [first["id"]], 1), timeout=30)
            await asyncio.sleep(0.5)
        ids = [ev["id"] for ev in events]
        await eventually(lambda: _count_is(engine, ids, len(ids)), timeout=60)

        today = datetime.now(UTC).date()
        legs, _ = _pure_fold(docs, types, overrides, script)
        for partner in types:
            want = usd_as_of(legs[partner], today)

            async def equal(partner=partner, want=want):
                got = (await client.get(f"/v1/partners/{partner}/balances")).json()["balances"]
                return got and {b: Decimal(a) for b, a in got[0].items() if b != "currency"} == \
                    {b: want.get(b, Decimal(0)) for b in got[0] if b != "currency"}
            await eventually(equal, timeout=30)

        # R1's facts dated before its August deal arrived after it: its history folded again.
        assert (REGISTRY.get_sample_value("trailpay_refolds_total") or 0.0) > refolds_before

        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            result = await rebuild(conn, check=True, workers=1)
        assert result.differences == []
    finally:
        await producer.stop()
        stop.set()
        await asyncio.gather(second, return_exceptions=True)


async def _count_is(engine, ids: list[str], n: int) -> bool:
    return await _applied_events(engine, ids) == n
