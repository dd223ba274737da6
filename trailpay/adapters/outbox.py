"""Transactional outboxes: messages written with their effect, published only after commit.

Two tables serve as outboxes: `ledger_entries` (attributed entries for trailpay.ledger,
written by the ledger) and `outbox` (payout.requested for trailpay.payouts, written by
the accrual service). Rows are claimed with FOR UPDATE SKIP LOCKED, sent, awaited,
then marked published in the same transaction; a crash between send and mark
re-sends, and consumers are idempotent on the message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay import metrics
from trailpay.adapters.db import raw
from trailpay.adapters.kafka import send_all

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outbox:
    table: str
    key_column: str
    published: Counter | None = None


LEDGER_ENTRIES = Outbox("ledger_entries", "partner_id", metrics.ENTRIES_PUBLISHED)
MESSAGES = Outbox("outbox", "key")


async def write(conn: AsyncConnection, topic: str, messages: Sequence[tuple[str, dict]]) -> None:
    """Queue (key, JSON payload) messages for `topic` in the caller's transaction."""
    if not messages:
        return
    pg = await raw(conn)
    await pg.execute(
        "INSERT INTO outbox (topic, key, payload) "
        "SELECT $1, k, p FROM unnest($2::text[], $3::jsonb[]) AS u(k, p)",
        topic, [k for k, _ in messages], [orjson.dumps(p).decode() for _, p in messages])


async def publish_once(engine: AsyncEngine, producer: AIOKafkaProducer, box: Outbox, topic: str,
                       limit: int) -> int:
    async with engine.begin() as conn:
        pg = await raw(conn)
        rows = await pg.fetch(
            f"SELECT id, {box.key_column}, payload::text FROM {box.table} "
            "WHERE NOT published AND topic = $2 "
            "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit, topic)
        if not rows:
            return 0
        await send_all(producer, topic, [(r[1].encode(), r[2].encode()) for r in rows])
        await pg.execute(f"UPDATE {box.table} SET published = true WHERE id = ANY($1::bigint[])",
                         [r[0] for r in rows])
    if box.published is not None:
        box.published.inc(len(rows))
    return len(rows)


async def run(engine: AsyncEngine, producer: AIOKafkaProducer, box: Outbox, topic: str,
              limit: int, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Publish until stopped; woken by each committed batch, polls every 0.5 s anyway."""
    while not stop.is_set():
        try:
            sent = await publish_once(engine, producer, box, topic, limit)
        except Exception:  # noqa: BLE001 - keep publishing; the rows stay unpublished
            log.exception("outbox %s publish failed; retrying", box.table)
            await asyncio.sleep(1)
            continue
        if sent < limit:
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.5)
