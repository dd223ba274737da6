"""Ledger service: trailpay.events -> journal -> attributed entries -> trailpay.ledger.

Composition root only: the batch handler and the outbox publisher are wired here.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.ingest import handle_batch, make_inbound
from trailpay.adapters import dead_letters, ledger_entries, outbox
from trailpay.adapters.align import Aligner
from trailpay.adapters.consumer_service import run_consumer_service
from trailpay.settings import Settings


async def run(settings: Settings, stop: asyncio.Event) -> None:
    def wire(engine: AsyncEngine, producer: AIOKafkaProducer):
        wake = asyncio.Event()
        handoff = outbox.Handoff()

        async def handle(records: list[ConsumerRecord]) -> None:
            batch = [make_inbound(r.value, list(r.headers or ()), r.topic, r.partition, r.offset)
                     for r in records]
            report = await handle_batch(engine, batch, settings.topic_ledger)
            if report.committed is not None:
                handoff.put(report.committed)
            if report.entries:
                wake.set()
            if report.dead:
                await dead_letters.publish(producer, settings.topic_events_dlq, report.dead)

        redelivery = ledger_entries.Redelivery(settings.redeliver_seconds)
        return handle, [outbox.run(engine, producer, outbox.LEDGER_ENTRIES, settings.topic_ledger,
                                   settings.outbox_batch_max, wake, stop, handoff),
                        redelivery.run(engine, producer, settings.topic_ledger,
                                       settings.redeliver_sweep_seconds, stop)]

    await run_consumer_service(settings, stop, name="ledger", topic=settings.topic_events,
                               group=settings.group_ledger, default_port=9101, wire=wire,
                               poison=dead_letters.poison("ledger", settings.topic_events_dlq),
                               aligner=Aligner(patience=settings.ledger_align_ms / 1000,
                                               idle=settings.ledger_align_idle_ms / 1000,
                                               full=2 * settings.consumer_batch_max)
                               if settings.ledger_align_ms else None)
