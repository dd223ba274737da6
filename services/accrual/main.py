"""Accrual service: trailpay.ledger -> plan engine -> postings, balances, partner state,
payouts; payout.requested -> trailpay.payouts (after commit); the payout scheduler.

Composition root only: settings, adapters and the loop are wired here.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import ConsumerRecord

from services.accrual import scheduler
from services.accrual.apply import handle_batch
from trailpay.adapters import dead_letters, kafka, outbox
from trailpay.adapters.consume import consume
from trailpay.adapters.db import create_engine, ping
from trailpay.adapters.ops_server import ops_app, ops_server
from trailpay.adapters.plan_store import PlanCache
from trailpay.adapters.supervise import until_stopped
from trailpay.core.attribution import entry_from_dict
from trailpay.settings import Settings

log = logging.getLogger("trailpay.accrual")


async def run(settings: Settings, stop: asyncio.Event) -> None:
    engine = create_engine(settings)
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    consumer = kafka.consumer(settings, settings.topic_ledger, settings.group_accrual)
    await producer.start()
    await consumer.start()
    plans = PlanCache()
    wake = asyncio.Event()

    async def handle(records: list[ConsumerRecord]) -> None:
        entries = [entry_from_dict(orjson.loads(r.value)) for r in records]
        report = await handle_batch(engine, plans, entries, settings.topic_payouts)
        if report.messages:
            wake.set()
        if report.dead:
            await dead_letters.publish(producer, settings.topic_events_dlq, report.dead)

    async def ready() -> dict[str, bool]:
        return {"database": await ping(engine),
                "broker": await kafka.ping(producer, settings.topic_ledger)}

    server = ops_server(ops_app("accrual", ready), settings.gateway_host,
                        settings.metrics_port or 9102)
    log.info("accrual consuming %s as %s", settings.topic_ledger, settings.group_accrual)
    try:
        await until_stopped(stop, [
            consume(consumer, settings.group_accrual, handle, stop, settings.consumer_poll_ms,
                    settings.consumer_batch_max),
            outbox.run(engine, producer, outbox.MESSAGES, settings.topic_payouts,
                       settings.outbox_batch_max, wake, stop),
            scheduler.run(engine, producer, settings.topic_events, stop),
            server.serve(),
        ], on_stop=lambda: setattr(server, "should_exit", True))
    finally:
        await consumer.stop()
        await producer.stop()
        await engine.dispose()
