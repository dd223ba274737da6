"""Ledger entries (`ledger_entries`): the ledger's attributed entries, its outbox to
trailpay.ledger (`outbox.LEDGER_ENTRIES`), and whether the accrual has applied them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters import outbox
from trailpay.adapters.db import raw
from trailpay.adapters.fastjson import entry_json
from trailpay.core.journal import LedgerEntry

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
