"""Transactional outboxes: messages written with their effect, published only after commit.

Two tables serve as outboxes: `ledger_entries` (attributed entries for trailpay.ledger,
written by the ledger) and `outbox` (payout.requested for trailpay.payouts, written by
the accrual service). Both are append-only.

Every row carries the id of the transaction that wrote it (`xid`, migration 0021). The
publisher keeps a cursor (last_xid, last_id) per (outbox, topic) in `outbox_cursors`,
reads the rows after it in (xid, id) order, but only rows of transactions older than
every transaction still running: those are final (committed, or never to be seen), so
the cursor never passes a row that a slower writer commits later. It sends them and
moves the cursor in the same transaction. A crash between send and commit re-sends;
consumers are idempotent on the message id. Writers take no lock: several ledger
processes and lanes append and commit at once. (Before, a lock from insert to commit
kept ids in commit order, and serialised them all; a published flag on every row had
cost a rewrite of each row.)

A writer in the publisher's own process also hands it what it just committed
(`Handoff`): rows it holds are read back without their payload and sent from memory.
The table stays the truth for which rows come next and in what order.
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


@dataclass(frozen=True, slots=True)
class Committed:
    """Rows one transaction appended and committed, all for `topic`: their ids, and their
    (key, payload) bytes in the same order."""

    ids: list[int]
    topic: str
    messages: list[tuple[bytes, bytes]]


class Handoff:
    """Committed messages from this process's writer, by row id, waiting for its publisher.

    Holds at most `limit` messages: past that (the publisher is stalled, Kafka is down)
    it forgets what it holds, and the publisher reads the payloads from the table.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._held: dict[int, tuple[bytes, bytes]] = {}  # in commit order
        self.limit = limit

    def put(self, batch: Committed) -> None:
        if len(self._held) + len(batch.messages) > self.limit:
            self._held.clear()
        self._held.update(zip(batch.ids, batch.messages, strict=True))

    def clear(self) -> None:
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)

    def first(self, n: int) -> list[int]:
        """The ids of the `n` oldest messages held: those the publisher reads next, as a
        rule (it reads in transaction order, and this process commits in that order
        mostly)."""
        out = []
        for i in self._held:
            if len(out) == n:
                break
            out.append(i)
        return out

    def take(self, row_id: int) -> tuple[bytes, bytes] | None:
        """The message of a row, no longer held; None when it is not held."""
        return self._held.pop(row_id, None)


async def write(conn: AsyncConnection, topic: str, messages: Sequence[tuple[str, dict]]) -> None:
    """Queue (key, JSON payload) messages for `topic` in the caller's transaction."""
    if not messages:
        return
    pg = await raw(conn)
    await pg.execute(
        "INSERT INTO outbox (topic, key, payload) "
        "SELECT $1, k, p FROM unnest($2::text[], $3::jsonb[]) AS u(k, p)",
        topic, [k for k, _ in messages], [orjson.dumps(p).decode() for _, p in messages])


# The rows after a cursor, in (xid, id) order, of transactions older than all running ones.
# The row comparison `(xid, id) > (...)` is the index's range scan (xid, id); rows of other
# topics are read and skipped (the cursor moves past them). A row whose message this
# process holds comes back without its payload.
NEXT_ROWS = (
    "SELECT xid::text, id, topic, {key}, "
    "CASE WHEN id = ANY($4::bigint[]) THEN NULL ELSE payload::text END "
    "FROM {table} WHERE (xid, id) > ($1::text::xid8, $2) "
    "AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid, id LIMIT $3")


async def publish_once(engine: AsyncEngine, producer: AIOKafkaProducer, box: Outbox, topic: str,
                       limit: int, handoff: Handoff | None = None) -> int:
    """Send the next rows after this topic's cursor; returns the rows read (`limit`: more)."""
    async with engine.begin() as conn:
        pg = await raw(conn)
        # The cursor row's lock makes publishers of one outbox and topic take turns.
        cursor = await pg.fetchrow("SELECT last_xid::text, last_id FROM outbox_cursors "
                                   "WHERE box = $1 AND topic = $2 FOR UPDATE", box.table, topic)
        if cursor is None:
            await pg.execute("INSERT INTO outbox_cursors (box, topic, last_id) VALUES ($1, $2, 0) "
                             "ON CONFLICT DO NOTHING", box.table, topic)
            cursor = await pg.fetchrow("SELECT last_xid::text, last_id FROM outbox_cursors "
                                       "WHERE box = $1 AND topic = $2 FOR UPDATE", box.table, topic)
        held = handoff.first(limit) if handoff else []
        rows = await pg.fetch(NEXT_ROWS.format(key=box.key_column, table=box.table),
                              cursor[0], cursor[1], limit, held)
        if not rows:
            return 0
        mine: list[tuple[bytes, bytes]] = []
        from_memory = 0
        for _, row_id, row_topic, key, payload in rows:
            message = handoff.take(row_id) if handoff is not None else None
            if row_topic != topic:
                continue
            if payload is None:
                assert message is not None  # (held when read: only this task takes them)
                mine.append(message)
                from_memory += 1
            else:
                mine.append((key.encode(), payload.encode()))
        await send_all(producer, topic, mine)
        await pg.execute("UPDATE outbox_cursors SET last_xid = $3::text::xid8, last_id = $4, "
                         "updated_at = now() WHERE box = $1 AND topic = $2", box.table, topic,
                         rows[-1][0], rows[-1][1])
    source = "handoff" if from_memory == len(mine) else "table"
    metrics.OUTBOX_READS.labels(box.table, source).inc()
    if box.published is not None:
        box.published.inc(len(mine))
    return len(rows)


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
