"""Transactional outboxes: messages written with their effect, published only after commit.

Two tables serve as outboxes: `ledger_entries` (attributed entries for trailpay.ledger,
written by the ledger) and `outbox` (payout.requested for trailpay.payouts, written by
the accrual service). Both are append-only.

Writers take the outbox's transaction lock (`lock_for_append`) just before they insert,
so rows become visible in id order; the publisher keeps a cursor per (outbox, topic)
in `outbox_cursors`, reads the rows after it, sends them, and moves the cursor in the
same transaction. A crash between send and commit re-sends; consumers are idempotent
on the message id. (A published flag on every row cost a rewrite of each row.)

A writer in the publisher's own process can also hand it what it just committed
(`Handoff`): when those rows follow the cursor exactly, the publisher sends them from
memory instead of reading them back. The table stays the truth: a gap (rows another
process wrote, a restart, a handoff dropped for size) sends the publisher back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
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


@dataclass(frozen=True, slots=True)
class Committed:
    """Rows one transaction appended and committed: ids first_id, first_id + 1, ...,
    all for `topic`, as (key, payload) bytes in id order."""

    first_id: int
    topic: str
    messages: list[tuple[bytes, bytes]]

    @property
    def last_id(self) -> int:
        return self.first_id + len(self.messages) - 1


class Handoff:
    """Committed batches from this process's writer, waiting for its publisher.

    Holds at most `limit` messages: past that (the publisher is stalled, Kafka is down)
    it forgets what it holds, and the publisher reads the table as after a restart.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._batches: deque[Committed] = deque()
        self._held = 0
        self.limit = limit

    def put(self, batch: Committed) -> None:
        if not batch.messages:
            return
        if self._held + len(batch.messages) > self.limit:
            self.clear()
        self._batches.append(batch)
        self._held += len(batch.messages)

    def clear(self) -> None:
        self._batches.clear()
        self._held = 0

    def take(self, cursor: int, topic: str, limit: int
             ) -> tuple[list[tuple[bytes, bytes]], int] | None:
        """(messages for `topic`, the id to move the cursor to) for the rows right after
        `cursor`, at most `limit` of them; None when what is held does not start there."""
        batches = self._batches
        while batches and batches[0].last_id <= cursor:  # already published
            self._held -= len(batches.popleft().messages)
        out: list[tuple[bytes, bytes]] = []
        last = cursor
        while batches and len(out) < limit:
            b = batches[0]
            if not b.first_id <= last + 1 <= b.last_id:
                break  # a gap: rows this process did not write, or did not hand over
            start = last + 1 - b.first_id
            part = b.messages[start:start + limit - len(out)]
            if b.topic == topic:
                out.extend(part)
            last += len(part)
            if last == b.last_id:
                self._held -= len(batches.popleft().messages)
        return (out, last) if last > cursor else None


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
                       limit: int, handoff: Handoff | None = None) -> int:
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
        handed = handoff.take(last, topic, limit) if handoff is not None else None
        if handed is not None:
            source, (mine, upto) = "handoff", handed
            read = upto - last  # contiguous ids: the rows it covers
        else:
            # Only `id > $1` in the WHERE clause: the plan is then the primary key's ordered
            # range scan whatever the statistics say. With `topic = $2` there too, stale
            # statistics during a bulk load made PostgreSQL bitmap-scan everything after the
            # cursor and sort it (25-50 ms a poll, and an idle publisher polls twice a
            # second). Rows for other topics are skipped by moving the cursor past them.
            rows = await pg.fetch(
                f"SELECT id, topic, {box.key_column}, payload::text FROM {box.table} "
                "WHERE id > $1 ORDER BY id LIMIT $2", last, limit)
            if not rows:
                return 0
            source, upto, read = "table", rows[-1][0], len(rows)
            mine = [(r[2].encode(), r[3].encode()) for r in rows if r[1] == topic]
        await send_all(producer, topic, mine)
        await pg.execute("UPDATE outbox_cursors SET last_id = $3, updated_at = now() "
                         "WHERE box = $1 AND topic = $2", box.table, topic, upto)
    metrics.OUTBOX_READS.labels(box.table, source).inc()
    if box.published is not None:
        box.published.inc(len(mine))
    return read


async def run(engine: AsyncEngine, producer: AIOKafkaProducer, box: Outbox, topic: str,
              limit: int, wake: asyncio.Event, stop: asyncio.Event,
              handoff: Handoff | None = None) -> None:
    """Publish until stopped; woken by each committed batch, polls every 0.5 s anyway."""
    while not stop.is_set():
        try:
            sent = await publish_once(engine, producer, box, topic, limit, handoff)
        except Exception:  # noqa: BLE001 - keep publishing; the rows stay unpublished
            log.exception("outbox %s publish failed; retrying", box.table)
            await asyncio.sleep(1)
            continue
        if sent < limit:
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.5)
