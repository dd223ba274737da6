"""Ledger service: trailpay.events -> journal -> attributed entries -> trailpay.ledger.

Composition root only: settings, adapters and the loops are wired here.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord

from services.ledger.ingest import Inbound, handle_batch
from trailpay.adapters import dead_letters, kafka, outbox
from trailpay.adapters.consume import consume
from trailpay.adapters.db import create_engine, ping
from trailpay.adapters.ops_server import ops_app, ops_server
from trailpay.adapters.supervise import until_stopped
from trailpay.settings import Settings

log = logging.getLogger("trailpay.ledger")


async def run(settings: Settings, stop: asyncio.Event) -> None:
    engine = create_engine(settings)
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    consumer = kafka.consumer(settings, settings.topic_events, settings.group_ledger)
    await producer.start()
    await consumer.start()
    wake = asyncio.Event()

    async def handle(records: list[ConsumerRecord]) -> None:
        batch = [Inbound(r.value, list(r.headers or ()), r.topic, r.partition, r.offset)
                 for r in records]
        report = await handle_batch(engine, batch, settings.topic_ledger)
        if report.entries:
            wake.set()
        if report.dead:
            await dead_letters.publish(producer, settings.topic_events_dlq, report.dead)

    async def ready() -> dict[str, bool]:
        return {"database": await ping(engine),
                "broker": await kafka.ping(producer, settings.topic_events)}

    server = ops_server(ops_app("ledger", ready), settings.gateway_host,
                        settings.metrics_port or 9101)
    log.info("ledger consuming %s as %s", settings.topic_events, settings.group_ledger)
    try:
        await until_stopped(stop, [
            consume(consumer, settings.group_ledger, handle, stop, settings.consumer_poll_ms,
                    settings.consumer_batch_max),
            outbox.run(engine, producer, outbox.LEDGER_ENTRIES, settings.topic_ledger,
                       settings.outbox_batch_max, wake, stop),
            server.serve(),
        ], on_stop=lambda: setattr(server, "should_exit", True))
    finally:
        await consumer.stop()
        await producer.stop()
        await engine.dispose()
