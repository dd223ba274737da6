"""Transactional outboxes: messages written with their effect, published only after commit.

Two tables serve as outboxes: `ledger_entries` (attributed entries for trailpay.ledger,
written by the ledger) and `outbox` (payout.requested for trailpay.payouts, written by
the accrual service). Both are append-only.

Writers take the outbox's transaction lock (`lock_for_append`) just before they insert,
so rows become visible in id order; the publisher keeps a cursor per (outbox, topic)
in `outbox_cursors`, reads the rows after it, sends them, and moves the cursor in the
same transaction. A crash between send and commit re-sends; consumers are idempotent
on the message id. (A published flag on every row cost a rewrite of each row.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
LOCK_SPACE = 7_431  # pg_advisory_xact_lock(LOCK_SPACE, hashtext(table)): apart from other locks


async def lock_for_append(pg: Any, box: Outbox) -> None:
    """Serialise appends to this outbox until the caller's transaction ends, so that a
    row's id is never below one already committed (the publisher's cursor relies on it)."""
    await pg.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_SPACE, box.table)


async def write(conn: AsyncConnection, topic: str, messages: Sequence[tuple[str, dict]]) -> None:
    """Queue (key, JSON payload) messages for `topic` in the caller's transaction."""
    if not messages:
        return
    pg = await raw(conn)
    await lock_for_append(pg, MESSAGES)
    await pg.execute(
        "INSERT INTO outbox (topic, key, payload) "
        "SELECT $1, k, p FROM unnest($2::text[], $3::jsonb[]) AS u(k, p)",
        topic, [k for k, _ in messages], [orjson.dumps(p).decode() for _, p in messages])


async def publish_once(engine: AsyncEngine, producer: AIOKafkaProducer, box: Outbox, topic: str,
                       limit: int) -> int:
    """Send the next rows after this topic's cursor; returns the rows read (`limit`: more)."""
    async with engine.begin() as conn:
        pg = await raw(conn)
        # The cursor row's lock makes publishers of one outbox and topic take turns.
        last = await pg.fetchval("SELECT last_id FROM outbox_cursors WHERE box = $1 AND topic = $2 "
                                 "FOR UPDATE", box.table, topic)
        if last is None:
            await pg.execute("INSERT INTO outbox_cursors (box, topic, last_id) VALUES ($1, $2, 0) "
                             "ON CONFLICT DO NOTHING", box.table, topic)
            last = await pg.fetchval("SELECT last_id FROM outbox_cursors WHERE box = $1 "
                                     "AND topic = $2 FOR UPDATE", box.table, topic)
        # Only `id > $1` in the WHERE clause: the plan is then the primary key's ordered
        # range scan whatever the statistics say. With `topic = $2` there too, stale
        # statistics during a bulk load made PostgreSQL bitmap-scan everything after the
        # cursor and sort it (25-50 ms a poll, and an idle publisher polls twice a second).
        # Rows for other topics are skipped by moving the cursor past them.
        rows = await pg.fetch(
            f"SELECT id, topic, {box.key_column}, payload::text FROM {box.table} "
            "WHERE id > $1 ORDER BY id LIMIT $2", last, limit)
        if not rows:
            return 0
        mine = [(r[2].encode(), r[3].encode()) for r in rows if r[1] == topic]
        await send_all(producer, topic, mine)
        await pg.execute("UPDATE outbox_cursors SET last_id = $3, updated_at = now() "
                         "WHERE box = $1 AND topic = $2", box.table, topic, rows[-1][0])
    if box.published is not None:
        box.published.inc(len(mine))
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
