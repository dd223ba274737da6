"""The batch consume loop shared by the ledger and accrual services.

Poll a batch, hand it to the service's handler (which commits its effect and
its idempotency keys to PostgreSQL), then commit offsets as a hint. A failing
handler does not hold the batch back: trailpay.adapters.isolation retries it in
halves down to the records that fail alone, hands those to the service's poison
callback (a dead letter with the reason) and goes on; while the database or the
broker is down it waits instead, and dead-letters nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from trailpay import metrics
from trailpay.adapters.isolation import Isolation, Stall
from trailpay.adapters.kafka import record_lag

log = logging.getLogger(__name__)

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]
Poison = Callable[[ConsumerRecord, BaseException], Awaitable[None]]


def record_key(r: ConsumerRecord) -> str:
    """Where a record sits: topic/partition@offset."""
    return f"{r.topic}/{r.partition}@{r.offset}"


def isolation(service: str, handle: Handler, poison: Poison,
              healthy: Callable[[], Awaitable[bool]], stall: Stall) -> Isolation[ConsumerRecord]:
    """The isolation of a service's handler, with its poison records counted."""

    async def counted_poison(record: ConsumerRecord, exc: BaseException) -> None:
        await poison(record, exc)
        metrics.POISON_RECORDS.labels(service).inc()

    metrics.POISON_RECORDS.labels(service)  # exported at 0: increase() sees the first one
    metrics.STALLED_SECONDS.labels(service).set_function(stall.seconds)
    metrics.CONSECUTIVE_FAILURES.labels(service).set_function(lambda: stall.failures)
    return Isolation(handle=handle, poison=counted_poison, healthy=healthy, key=record_key,
                     stall=stall, name=service)


async def consume(c: AIOKafkaConsumer, name: str, isolated: Isolation[ConsumerRecord],
                  stop: asyncio.Event, poll_ms: int, max_records: int) -> None:
    while not stop.is_set():
        polled = await c.getmany(timeout_ms=poll_ms, max_records=max_records)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            await record_lag(c, name)
            continue
        started = time.perf_counter()
        if not await isolated.run(records, stop):
            return  # stopping mid-batch: the rest is redelivered to whoever consumes next
        metrics.BATCH_SIZE.labels(name).observe(len(records))
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        try:
            await c.commit({tp: rs[-1].offset + 1 for tp, rs in polled.items()})
        except Exception:  # noqa: BLE001 - offsets are a hint; a rebalance may refuse them
            log.warning("%s: offset commit refused (rebalance?); effects are already durable",
                        name)
        await record_lag(c, name)

