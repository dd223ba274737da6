"""Outbox publisher: attributed entries go to trailpay.ledger only after commit.

Rows are claimed with FOR UPDATE SKIP LOCKED, sent, awaited, then marked
published in the same transaction; a crash between send and mark re-sends,
and the accrual service's idempotency on entry_id absorbs the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from trailpay import metrics
from trailpay.adapters.db import raw

log = logging.getLogger(__name__)


async def publish_once(engine: AsyncEngine, producer: AIOKafkaProducer, topic: str,
                       limit: int) -> int:
    async with engine.begin() as conn:
        pg = await raw(conn)
        rows = await pg.fetch(
            "SELECT id, partner_id, payload::text FROM ledger_entries "
            "WHERE NOT published AND topic = $2 "
            "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit, topic)
        if not rows:
            return 0
        futures = [await producer.send(topic, key=r[1].encode(), value=r[2].encode()) for r in rows]
        for f in futures:
            await f
        await pg.execute("UPDATE ledger_entries SET published = true WHERE id = ANY($1::bigint[])",
                         [r[0] for r in rows])
    metrics.ENTRIES_PUBLISHED.inc(len(rows))
    return len(rows)


async def run(engine: AsyncEngine, producer: AIOKafkaProducer, topic: str, limit: int,
              wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Publish until stopped; woken by each committed batch, polls every 0.5 s anyway."""
    while not stop.is_set():
        try:
            sent = await publish_once(engine, producer, topic, limit)
        except Exception:  # noqa: BLE001 - keep publishing; the rows stay unpublished
            log.exception("outbox publish failed; retrying")
            await asyncio.sleep(1)
            continue
        if sent < limit:
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.5)
