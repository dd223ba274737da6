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

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from trailpay import metrics
from trailpay.adapters.align import Aligner
from trailpay.adapters.isolation import Isolation, Stall, Stalls
from trailpay.adapters.kafka import lags, record_lag

log = logging.getLogger(__name__)

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]
Poison = Callable[[ConsumerRecord, BaseException], Awaitable[None]]


def record_key(r: ConsumerRecord) -> str:
    """Where a record sits: topic/partition@offset."""
    return f"{r.topic}/{r.partition}@{r.offset}"


def lanes(service: str, handle: Handler, poison: Poison, healthy: Callable[[], Awaitable[bool]],
          count: int, threshold: int) -> tuple[list[Isolation[ConsumerRecord]], Stalls]:
    """`count` isolations of a service's handler, one per lane, each with its own stall
    count, and the stalls read as one (metrics here; /readyz in the caller); poison
    records counted."""

    async def counted_poison(record: ConsumerRecord, exc: BaseException) -> None:
        await poison(record, exc)
        metrics.POISON_RECORDS.labels(service).inc()

    stalls = Stalls([Stall(threshold=threshold) for _ in range(count)])
    metrics.POISON_RECORDS.labels(service)  # exported at 0: increase() sees the first one
    metrics.STALLED_SECONDS.labels(service).set_function(stalls.seconds)
    metrics.CONSECUTIVE_FAILURES.labels(service).set_function(lambda: stalls.failures)
    return [Isolation(handle=handle, poison=counted_poison, healthy=healthy, key=record_key,
                      stall=stall, name=service if count == 1 else f"{service}[{n}]")
            for n, stall in enumerate(stalls.lanes)], stalls


def split(polled: dict[TopicPartition, list[ConsumerRecord]], count: int
          ) -> list[list[ConsumerRecord]]:
    """A polled batch by lane (partition mod lanes): lanes never share a partition, so
    their transactions touch disjoint journal streams and disjoint partners (trailpay.events
    is keyed by customer or partner, trailpay.ledger by partner)."""
    out: list[list[ConsumerRecord]] = [[] for _ in range(count)]
    for tp, records in polled.items():
        out[tp.partition % count].extend(records)
    return out


async def _aligned(c: AIOKafkaConsumer, aligner: Aligner, polled, max_records: int
                   ) -> dict[TopicPartition, list[ConsumerRecord]]:
    """What to handle now, out of what was polled and what is held (trailpay.adapters.align):
    partitions taken away are forgotten, one that holds a full batch stops fetching."""
    owned = c.assignment()
    aligner.drop([tp for tp in aligner.held if tp not in owned])
    aligner.add(polled)
    lag = await lags(c)
    taken = aligner.take(owned, lambda tp: lag.get(tp, 0) > 0, max_records)
    paused = c.paused()
    for tp in owned:
        full = aligner.count(tp) >= aligner.full
        if full and tp not in paused:
            c.pause(tp)
        elif not full and tp in paused:
            c.resume(tp)
    return taken


async def consume(c: AIOKafkaConsumer, name: str, isolated: list[Isolation[ConsumerRecord]],
                  stop: asyncio.Event, poll_ms: int, max_records: int,
                  aligner: Aligner | None = None) -> None:
    """Poll, hand each lane its share of the batch (in flight together: while one lane's
    transaction commits, another computes), then commit the offsets once all are done.
    With an aligner, records go in the order they were sent across partitions."""
    while not stop.is_set():
        wait = poll_ms if aligner is None else round(aligner.wait(poll_ms / 1000) * 1000)
        polled = await c.getmany(timeout_ms=wait, max_records=max_records)
        if aligner is not None:
            polled = await _aligned(c, aligner, polled, max_records)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            await record_lag(c, name)
            continue
        started = time.perf_counter()
        if len(isolated) == 1:
            done = await isolated[0].run(records, stop)
        else:
            shares = [(lane, rs) for lane, rs in zip(isolated, split(polled, len(isolated)),
                                                      strict=True) if rs]
            done = all(await asyncio.gather(*(lane.run(rs, stop) for lane, rs in shares)))
        if not done:
            return  # stopping mid-batch: the rest is redelivered to whoever consumes next
        metrics.BATCH_SIZE.labels(name).observe(len(records))
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        try:
            await c.commit({tp: rs[-1].offset + 1 for tp, rs in polled.items()})
        except Exception:  # noqa: BLE001 - offsets are a hint; a rebalance may refuse them
            log.warning("%s: offset commit refused (rebalance?); effects are already durable",
                        name)
        await record_lag(c, name)

