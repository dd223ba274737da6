"""Accrual service: trailpay.ledger -> plan engine -> postings, balances, partner state,
payouts; payout.requested -> trailpay.payouts (after commit); the payout scheduler; the
outbox's plan.version_published -> trailpay.notifications; the balances gauge.

Composition root only: the batch handler, the outbox publisher and the scheduler are
wired here.
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from services.accrual import scheduler
from services.accrual.apply import handle_batch
from trailpay.adapters import balance_totals, dead_letters, outbox
from trailpay.adapters.consumer_service import run_consumer_service
from trailpay.adapters.plan_store import PlanCache
from trailpay.adapters.state_store import StateStore
from trailpay.core.attribution import entry_from_dict
from trailpay.settings import Settings


async def run(settings: Settings, stop: asyncio.Event) -> None:
    def wire(engine: AsyncEngine, producer: AIOKafkaProducer):
        plans = PlanCache()
        store = StateStore(settings.accrual_state_partners)
        wake = asyncio.Event()

        async def handle(records: list[ConsumerRecord]) -> None:
            entries = [entry_from_dict(orjson.loads(r.value)) for r in records]
            report = await handle_batch(engine, plans, entries, settings.topic_payouts, store)
            if report.messages:
                wake.set()
            if report.dead:
                await dead_letters.publish(producer, settings.topic_events_dlq, report.dead)

        return handle, [
            outbox.run(engine, producer, outbox.MESSAGES, settings.topic_payouts,
                       settings.outbox_batch_max, wake, stop),
            # plan.version_published rows, written by the gateway: polled, not woken.
            outbox.run(engine, producer, outbox.MESSAGES, settings.topic_notifications,
                       settings.outbox_batch_max, asyncio.Event(), stop),
            scheduler.run(engine, producer, settings.topic_events, stop),
            balance_totals.run(engine, settings.balances_metric_seconds, stop),
        ]

    await run_consumer_service(settings, stop, name="accrual", topic=settings.topic_ledger,
                               group=settings.group_accrual, default_port=9102, wire=wire,
                               poison=dead_letters.poison("accrual", settings.topic_events_dlq))
