"""Rebuild: replay the journal's attributed entries into fresh projections, in memory.
With `check`, also derive those entries again from the journal's bodies
(adapters/rederive.py): a tampered body fails the check by name.

The same partner timelines the accrual service runs (core.timeline), fed the
entries in the order the accrual applied them, from nothing: late entries fold
the same histories again and post the same corrections, in the same months.
Partners are independent (each has its own state), so the fold can be split by
partner across processes without changing a cent. The result is compared with
the live `balances` table: design §4, "a rebuild must equal the live projection
to the cent".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.db import raw
from trailpay.adapters.plan_store import load_books
from trailpay.adapters.rederive import Mismatch, check_entries
from trailpay.adapters.rebuild_worker import (
    SHARD_SQL, FoldResult, fold, fold_shard, in_processes,
)
from trailpay.core.plans import Books
from trailpay.core.postings import BalanceKey, MonthKey


def fold_parallel(dsn: str, snapshot: str, books: Books, workers: int) -> FoldResult:
    """Fold with partners split across processes by a hash of the partner id (states are
    per partner, so the results add up); each process reads its own shard in the same
    snapshot, so nothing is read twice or shipped between processes."""
    parts = in_processes(fold_shard, [(dsn, snapshot, k, workers, books)
                                      for k in range(workers)], workers)
    out = FoldResult()
    for part in parts:
        out.entries += part.entries
        out.applied += part.applied
        out.refused += part.refused
        out.groups += part.groups
        out.balances.update(part.balances)  # disjoint partners: keys never collide
        out.months.update(part.months)
    return out


async def live_balances(conn: AsyncConnection) -> dict[BalanceKey, Decimal]:
    pg = await raw(conn)
    rows = await pg.fetch("SELECT partner_id, currency, bucket, available_on, amount FROM balances")
    return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


async def live_months(conn: AsyncConnection) -> dict[MonthKey, Decimal]:
    pg = await raw(conn)
    rows = await pg.fetch("SELECT partner_id, month, currency, bucket, available_on, amount "
                          "FROM balance_months")
    return {(r[0], r[1], r[2], r[3], r[4]): r[5] for r in rows}


def differences(rebuilt: dict[tuple, Decimal], live: dict[tuple, Decimal],
                limit: int = 20) -> list[tuple[tuple, Decimal, Decimal]]:
    """(key, rebuilt, live) wherever the two differ by any amount; zero rows count as absent."""
    keys = {k for k, v in rebuilt.items() if v} | {k for k, v in live.items() if v}
    out = []
    for k in sorted(keys):
        a, b = rebuilt.get(k, Decimal(0)), live.get(k, Decimal(0))
        if a != b:
            out.append((k, a, b))
            if len(out) >= limit:
                break
    return out


@dataclass
class Rebuild:
    events: int
    entries: int
    applied: int
    refused: int
    groups: int
    seconds: float
    balances: dict[BalanceKey, Decimal]
    months: dict[MonthKey, Decimal]
    # (key, rebuilt, live) where they differ: balance keys, then balance_months keys
    differences: list[tuple[tuple, Decimal, Decimal]] | None = None
    # journal entries whose bodies no longer give the entries folded (rederive.py)
    mismatches: list[Mismatch] | None = None
    check_seconds: float = 0.0  # deriving the entries again: apart from `seconds`

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(conn: AsyncConnection, check: bool = False, workers: int | None = None,
                  parallel_from: int = 20_000) -> Rebuild:
    """Replay the whole journal into fresh in-memory projections; optionally compare with live.

    Run it inside one transaction (REPEATABLE READ for a consistent snapshot when the
    services are running) so entries and live balances are read as of the same moment;
    worker processes join that snapshot. Below `parallel_from` entries, starting
    processes costs more than it saves: the fold runs here.
    """
    started = time.perf_counter()
    pg = await raw(conn)
    books = await load_books(conn)
    entries, events = await pg.fetchrow(
        "SELECT count(*), count(DISTINCT e.journal_seq) FROM ledger_entries e "
        "JOIN accrual_applied a ON a.entry_id = e.entry_id")
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if workers <= 1 or entries < parallel_from:
        result = fold([(r[0], r[1]) for r in await pg.fetch(SHARD_SQL, 1, 0)], books)
    else:
        snapshot = await pg.fetchval("SELECT pg_export_snapshot()")
        dsn = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        result = fold_parallel(dsn, snapshot, books, workers)
    seconds = time.perf_counter() - started
    out = Rebuild(events, result.entries, result.applied, result.refused, result.groups, seconds,
                  result.balances, result.months)
    if check:
        out.differences = (differences(result.balances, await live_balances(conn))
                           + differences(result.months, await live_months(conn)))
        started = time.perf_counter()
        _, out.mismatches = await check_entries(conn)
        out.check_seconds = time.perf_counter() - started
    return out
