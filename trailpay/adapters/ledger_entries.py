"""Ledger entries (`ledger_entries`): the ledger's attributed entries, its outbox to
trailpay.ledger (`outbox.LEDGER_ENTRIES`), whether the accrual has applied them, and
publishing again the ones it has not applied long after (`Redelivery`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay.adapters import outbox
from trailpay.adapters.db import raw
from trailpay.adapters.kafka import send_all
from trailpay.adapters.fastjson import entry_json
from trailpay.core.journal import LedgerEntry

log = logging.getLogger(__name__)

ENTRY_COLUMNS = ("id", "entry_id", "journal_seq", "partner_id", "topic", "payload")


async def write(conn: AsyncConnection, entries: list[LedgerEntry], topic: str
                ) -> outbox.Committed | None:
    """COPY the batch's entries into the outbox (twice the rows/s of INSERT ... unnest here).
    An entry is written once: its event was journaled in this same transaction (a
    redelivered event is a duplicate and makes no entries), and its id is unique per
    (event, partner). A repeat would be a bug, and the unique key fails the batch loudly.

    The ids are drawn first, under the outbox's lock, so that the rows can be handed to
    this process's publisher once committed (`outbox.Handoff`)."""
    if not entries:
        return None
    pg = await raw(conn)
    await outbox.lock_for_append(pg, outbox.LEDGER_ENTRIES)
    ids = await pg.fetchval("SELECT array(SELECT nextval('ledger_entries_id_seq') "
                            "FROM generate_series(1, $1))", len(entries))
    payloads = [entry_json(e) for e in entries]  # bytes, as Kafka takes them
    await pg.copy_records_to_table("ledger_entries", columns=ENTRY_COLUMNS, records=[
        (i, e.entry_id, e.journal_seq, e.partner_id, topic, p.decode())
        for i, e, p in zip(ids, entries, payloads, strict=True)])
    if ids[-1] - ids[0] + 1 != len(ids):  # another writer took ids outside the lock
        return None
    return outbox.Committed(ids[0], topic, [(e.partner_id.encode(), p)
                                           for e, p in zip(entries, payloads, strict=True)])


SETTLED = (
    "SELECT (SELECT count(*) FROM ledger_entries e WHERE e.journal_seq = j.seq) = "
    "(SELECT count(*) FROM accrual_applied a WHERE a.journal_seq = j.seq) "
    "FROM journal j WHERE j.source = $1 AND j.event_id = $2")


async def settled(pg: Any, source: str, event_id: str) -> bool | None:
    """Whether every entry the event (source, id) made has been applied by the accrual
    (pg: an asyncpg connection). None: not journaled yet. The journal and an event's
    entries are written in one transaction, so a journaled event's entries are all there
    to count."""
    return await pg.fetchval(SETTLED, source, event_id)


# --- entries the broker forgot ----------------------------------------------------------------

@dataclass
class Redelivery:
    """Entries published to trailpay.ledger but not applied by the accrual after
    `redeliver` seconds are published again: a broker with memory storage that restarts
    forgets them, and the outbox's cursor had moved past them for good. The accrual is
    idempotent on entry ids, so an entry that was only slow is acknowledged twice,
    harmlessly.

    `watermark` is the id up to which every published entry is known to be applied, so
    each pass reads only the entries after it (at most `window`); `first_seen` remembers
    since when an entry has been seen unapplied, in this process's clock."""

    redeliver: float
    window: int = 50_000
    clock: Callable[[], float] = time.monotonic
    watermark: int | None = None  # None: found on the first pass
    first_seen: dict[int, float] = field(default_factory=dict)

    async def once(self, engine: AsyncEngine, producer: AIOKafkaProducer, topic: str) -> int:
        """One pass; returns how many entries were published again."""
        async with engine.connect() as conn:
            pg = await raw(conn)
            cursor = await pg.fetchval(
                "SELECT last_id FROM outbox_cursors WHERE box = $1 AND topic = $2",
                outbox.LEDGER_ENTRIES.table, topic) or 0
            if self.watermark is None:  # once per process: one scan for the oldest waiting
                self.watermark = await pg.fetchval(
                    "SELECT coalesce(min(e.id) - 1, $1) FROM ledger_entries e WHERE e.id <= $1 "
                    "AND e.topic = $2 AND NOT EXISTS (SELECT 1 FROM accrual_applied a "
                    "WHERE a.entry_id = e.entry_id)", cursor, topic)
            rows = await pg.fetch(
                "SELECT e.id, e.partner_id, e.payload, a.entry_id IS NOT NULL "
                "FROM ledger_entries e LEFT JOIN accrual_applied a ON a.entry_id = e.entry_id "
                "WHERE e.id > $1 AND e.id <= $2 AND e.topic = $3 ORDER BY e.id LIMIT $4",
                self.watermark, cursor, topic, self.window)
        now = self.clock()
        assert self.watermark is not None
        waiting = [r for r in rows if not r[3]]
        if not waiting:
            self.watermark = rows[-1][0] if rows else self.watermark
            self.first_seen.clear()
            return 0
        self.watermark = max(self.watermark, waiting[0][0] - 1)
        self.first_seen = {r[0]: self.first_seen.get(r[0], now) for r in waiting}
        due = [r for r in waiting if now - self.first_seen[r[0]] >= self.redeliver]
        if due:
            await send_all(producer, topic, [(r[1].encode(), r[2].encode()) for r in due])
            for r in due:
                self.first_seen[r[0]] = now
            log.info("re-published %d entries not applied after %.0f s", len(due),
                     self.redeliver)
        return len(due)

    async def run(self, engine: AsyncEngine, producer: AIOKafkaProducer, topic: str,
                  every: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                await self.once(engine, producer, topic)
            except Exception as exc:  # noqa: BLE001 - database or broker away: next time
                log.warning("ledger entry redelivery failed: %s: %s", type(exc).__name__, exc)
