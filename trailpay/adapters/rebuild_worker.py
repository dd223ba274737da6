"""The part of a rebuild that runs in each worker process: read a shard, fold it.

A spawned worker imports this module (and what it needs) before it can start, so it
imports only the pure core, orjson and asyncpg: no SQLAlchemy or Alembic (0.6 s of
imports in trailpay.adapters.rebuild, 0.2 s here). `rebuild` is the parent's side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from trailpay.core.attribution import entry_from_dict
from trailpay.core.plans import Books
from trailpay.core.postings import BalanceKey, MonthKey, add_partner_legs
from trailpay.core.timeline import Timeline


@dataclass
class FoldResult:
    entries: int = 0
    applied: int = 0
    refused: int = 0
    groups: int = 0
    balances: dict[BalanceKey, Decimal] = field(default_factory=dict)
    months: dict[MonthKey, Decimal] = field(default_factory=dict)  # balance_months


def fold(payloads: Iterable[bytes | str | dict[str, Any]], books: Books) -> FoldResult:
    """Replay applied entries (ledger_entries payloads, in the order the accrual applied
    them) through the partners' timelines, exactly as the accrual service did: the same
    late entries fold the same histories again and post the same corrections."""
    out = FoldResult()
    timelines: dict[str, Timeline] = {}
    for payload in payloads:
        d = payload if isinstance(payload, dict) else orjson.loads(payload)
        e = entry_from_dict(d)
        out.entries += 1
        t = timelines.get(e.partner_id)
        if t is None:
            t = timelines[e.partner_id] = Timeline(e.partner_id)
        arrival = t.arrive((e,), books)
        out.refused += len(arrival.refused)  # the live service dead-letters these
        out.applied += 1 - len(arrival.refused)
        out.groups += len(arrival.groups)
        add_partner_legs(out.balances, arrival.groups, out.months)
    return out


SHARD_SQL = ("SELECT e.payload::text FROM ledger_entries e "
             "JOIN accrual_applied a ON a.entry_id = e.entry_id "
             "WHERE ($1::int = 1 OR (hashtext(e.partner_id) & 2147483647) % $1 = $2) "
             "ORDER BY a.applied_order")


async def _fetch_shard(dsn: str, snapshot: str, shard: int, shards: int) -> list[str]:
    """One shard's entries, read in the rebuild's own snapshot (pg_export_snapshot)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return [r[0] for r in await conn.fetch(SHARD_SQL, shards, shard)]
    finally:
        await conn.close()


def fold_shard(args: tuple[str, str, int, int, Books]) -> FoldResult:
    """A worker process: read its partners' entries itself, then fold them."""
    import asyncio

    dsn, snapshot, shard, shards, books = args
    return fold(asyncio.run(_fetch_shard(dsn, snapshot, shard, shards)), books)


