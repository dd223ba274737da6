"""Faults (issue 14): PostgreSQL restarting mid-stream, then the broker restarting empty.

The test session's servers are shared, so this test starts its own: an embedded
PostgreSQL that it stops and starts again on the same data, and a Tansu broker (memory
storage) that it restarts on the same port. Ledger, accrual and gateway run in this
process against them. While PostgreSQL is away the services answer /readyz 503 and the
HTTP intake answers 503 with Retry-After (problem JSON); events sent over Kafka
meanwhile wait. When it is back the services reconnect by themselves. Every event
answered 202, before, during and after either restart, ends up journaled and accrued
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.devserver import wait_ready
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import cloud_event, deal, eventually, setup_programme, uid
from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
from trailpay.settings import Settings

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def own_stack(tmp_path):
    """Own PostgreSQL, broker and services: (settings, pg, broker, gateway URL, ops URLs)."""
    from services.accrual.main import run as run_accrual
    from services.gateway.main import run as run_gateway
    from services.ledger.main import run as run_ledger

    pg = EmbeddedPostgres(tmp_path / "pg")
    url = with_database(await asyncio.to_thread(pg.start), "trailpay")
    broker = TansuBroker()
    settings = Settings(
        database_url=url, kafka_bootstrap_servers=await asyncio.to_thread(broker.start),
        trailpay_admin_token=ADMIN_TOKEN, gateway_port=free_port(), consumer_poll_ms=50,
        redeliver_sweep_seconds=0.5, redeliver_seconds=3.0, intake_send_timeout=2.0,
        retry_after_seconds=1, db_pool_size=4, api_key_cache_seconds=60)
    await ensure_database(settings.async_database_url)
    await asyncio.to_thread(migrate_sync, settings)
    ops = {"ledger": free_port(), "accrual": free_port()}
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_ledger(settings.model_copy(
            update={"metrics_port": ops["ledger"]}), stop)),
        asyncio.create_task(run_accrual(settings.model_copy(
            update={"metrics_port": ops["accrual"]}), stop)),
        asyncio.create_task(run_gateway(settings, stop)),
    ]
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    try:
        await asyncio.to_thread(wait_ready, f"{gateway}/readyz", 90)
        yield settings, pg, broker, gateway, {
            k: f"http://127.0.0.1:{p}/readyz" for k, p in ops.items()}
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(pg.stop)


async def _status(url: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=3.0) as c:
            return (await c.get(url)).status_code
    except httpx.HTTPError:
        return 0


async def _journaled(settings: Settings, source: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM journal WHERE source = $1", source)
    finally:
        await conn.close()


async def test_postgres_and_broker_restarts_lose_no_accepted_event(tmp_path):
    source = uid("crm.faults")
    async with own_stack(tmp_path) as (settings, pg, broker, gateway, ops):
        async with httpx.AsyncClient(base_url=gateway, timeout=30.0, headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            _, (p,) = await setup_programme(client, 1)
            accepted: list[str] = []

            async def post(n: int) -> list[int]:
                codes = []
                for _ in range(n):
                    e = cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv="1000.00"),
                                    source=source)
                    r = await client.post("/v1/events", json=e)
                    codes.append(r.status_code)
                    if r.status_code == 202:
                        accepted.append(e["id"])
                return codes

            assert set(await post(10)) == {202}
            await eventually(lambda: _at_least(settings, source, 10), timeout=30)

            # --- PostgreSQL goes away -------------------------------------------------------
            await asyncio.to_thread(pg.stop)
            for url in (f"{gateway}/readyz", *ops.values()):
                await eventually(lambda u=url: _is(u, 503), timeout=30)
            r = await client.post("/v1/events", json=cloud_event(
                "deal.closed", deal(uid("C"), [(p, "1")]), source=source))
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["retry-after"] == "1" and "database" in r.json()["detail"]
            # Facts that arrive over Kafka meanwhile wait for the database.
            kafka_ids = await _produce(settings, p, source, 5)
            await asyncio.sleep(2.0)  # the ledger tries them against a database that is away
            started = time.monotonic()
            await asyncio.to_thread(pg.start)
            for url in (f"{gateway}/readyz", *ops.values()):
                await eventually(lambda u=url: _is(u, 200), timeout=60)
            reconnect = time.monotonic() - started
            assert set(await post(10)) == {202}
            await eventually(lambda: _at_least(settings, source, 25), timeout=60)

            # --- the broker restarts empty ---------------------------------------------------
            assert set(await post(10)) == {202}  # answered; maybe not journaled yet
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            codes = await post(10)
            assert set(codes) == {202}, codes  # durable in PostgreSQL, sent when it can be
            total = len(accepted) + len(kafka_ids)
            assert total == 45
            await eventually(lambda: _at_least(settings, source, total), timeout=120)
            for url in (f"{gateway}/readyz", *ops.values()):
                await eventually(lambda u=url: _is(u, 200), timeout=60)
            import asyncpg

            conn = await asyncpg.connect(settings.asyncpg_dsn)
            try:
                ids = {r[0] for r in await conn.fetch(
                    "SELECT event_id FROM journal WHERE source = $1", source)}
                applied = await conn.fetchval(
                    "SELECT count(*) FROM accrual_applied WHERE partner_id = $1", p)
                dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
                await eventually(lambda: _intake_empty(settings), timeout=30)
            finally:
                await conn.close()
            assert ids == set(accepted) | set(kafka_ids)
            assert dead == 0
            await eventually(lambda: _applied(settings, p, total), timeout=60)
            assert applied <= total + 1
            assert reconnect < 60


async def _applied(settings: Settings, p: str, n: int) -> bool:
    """Every entry the ledger made for the partner is applied, once, and there are at
    least `n` (the deals; an enrolment may make one more)."""
    import asyncpg

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        made = await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE partner_id = $1", p)
        got = await conn.fetchval("SELECT count(*) FROM accrual_applied WHERE partner_id = $1",
                                  p)
        return made >= n and got == made
    finally:
        await conn.close()


async def _intake_empty(settings: Settings) -> bool:
    import asyncpg

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM intake") == 0
    finally:
        await conn.close()


async def _is(url: str, status: int) -> bool:
    return await _status(url) == status


async def _at_least(settings: Settings, source: str, n: int) -> bool:
    try:
        return await _journaled(settings, source) >= n
    except OSError:
        return False


async def _produce(settings: Settings, p: str, source: str, n: int) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False)
    await producer.start()
    ids = []
    try:
        for _ in range(n):
            e = cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv="1000.00"),
                            source=source)
            await producer.send_and_wait(settings.topic_events, orjson.dumps(e),
                                         key=e["data"]["customer_id"].encode())
            ids.append(e["id"])
    finally:
        await producer.stop()
    return ids
