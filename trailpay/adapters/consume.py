"""The batch consume loop shared by the ledger and accrual services.

Poll a batch, hand it to the service's handler (which commits its effect and
its idempotency keys to PostgreSQL), then commit offsets as a hint. A failing
handler rewinds to the batch start and retries with backoff: nothing is
skipped, and the handler's idempotency makes the retry harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from trailpay import metrics
from trailpay.adapters.kafka import record_lag

log = logging.getLogger(__name__)

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]


async def consume(c: AIOKafkaConsumer, name: str, handle: Handler, stop: asyncio.Event,
                  poll_ms: int, max_records: int) -> None:
    backoff = 0.1
    while not stop.is_set():
        polled = await c.getmany(timeout_ms=poll_ms, max_records=max_records)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            await record_lag(c, name)
            continue
        started = time.perf_counter()
        try:
            await handle(records)
        except Exception:  # noqa: BLE001 - infrastructure trouble: rewind and retry
            log.exception("%s: batch of %d failed; rewinding to retry", name, len(records))
            for tp, rs in polled.items():
                c.seek(tp, rs[0].offset)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.1
        metrics.BATCH_SIZE.labels(name).observe(len(records))
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        try:
            await c.commit({tp: rs[-1].offset + 1 for tp, rs in polled.items()})
        except Exception:  # noqa: BLE001 - offsets are a hint; a rebalance may refuse them
            log.warning("%s: offset commit refused (rebalance?); effects are already durable", name)
        await record_lag(c, name)
