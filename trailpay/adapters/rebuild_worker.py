"""The part of a rebuild that runs in each worker process: read a shard, fold it.

A spawned worker imports this module (and what it needs) before it can start, so it
imports only the pure core, orjson and asyncpg: no SQLAlchemy or Alembic (0.6 s of
imports in trailpay.adapters.rebuild, 0.2 s here). `rebuild` is the parent's side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from trailpay.core.attribution import entry_from_dict
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Books
from trailpay.core.postings import BalanceKey, MonthKey, add_partner_legs
from trailpay.core.timeline import Timeline

R = TypeVar("R")


@dataclass
class FoldResult:
    entries: int = 0
    applied: int = 0
    refused: int = 0
    groups: int = 0
    balances: dict[BalanceKey, Decimal] = field(default_factory=dict)
    months: dict[MonthKey, Decimal] = field(default_factory=dict)  # balance_months


Row = tuple[bytes | str | dict[str, Any], int | None]  # an entry's payload, its arrival


def fold(rows: Iterable[Row], books: Books) -> FoldResult:
    """Replay applied entries (ledger_entries payloads with their arrival, in the order the
    accrual applied them) through the partners' timelines, exactly as the accrual service
    did: entries that arrived together arrive together again, so the same late entries fold
    the same histories again and post the same corrections."""
    out = FoldResult()
    timelines: dict[str, Timeline] = {}
    for group in arrivals(rows):
        p = group[0].partner_id
        t = timelines.get(p)
        if t is None:
            t = timelines[p] = Timeline(p)
        arrival = t.arrive(group, books)
        out.entries += len(group)
        out.refused += len(arrival.refused)  # the live service dead-letters these
        out.applied += len(group) - len(arrival.refused)
        out.groups += len(arrival.groups)
        add_partner_legs(out.balances, arrival.groups, out.months)
    return out


def arrivals(rows: Iterable[Row]) -> Iterator[list[LedgerEntry]]:
    """Entries in order of application, grouped by partner and arrival (one batch's
    entries for one partner; an entry of unknown arrival, NULL, arrived alone). A partner's
    groups come in the order they arrived; partners are independent of each other."""
    open_: dict[str, tuple[int | None, list[LedgerEntry]]] = {}
    for payload, arrival in rows:
        d = payload if isinstance(payload, dict) else orjson.loads(payload)
        e = entry_from_dict(d)
        held = open_.get(e.partner_id)
        if held is not None and (arrival is None or held[0] != arrival):
            yield held[1]
            held = None
        if held is None:
            open_[e.partner_id] = (arrival, [e])
        else:
            held[1].append(e)
    yield from (group for _, group in open_.values())


# A shard: the partners whose id hashes to `shard` of `shards` ($1 shards, $2 this one).
IN_SHARD = "($1::int = 1 OR (hashtext(e.partner_id) & 2147483647) % $1 = $2)"
SHARD_SQL = ("SELECT e.payload::text, a.arrival FROM ledger_entries e "
             "JOIN accrual_applied a ON a.entry_id = e.entry_id "
             f"WHERE {IN_SHARD} ORDER BY a.applied_order")


async def fetch_shard(dsn: str, snapshot: str | None, sql: str, shard: int, shards: int,
                      *params: Any) -> list[tuple[Any, ...]]:
    """One shard's rows (sql takes $1 shards, $2 shard, then params), read in the parent's
    snapshot (pg_export_snapshot) so that no process sees another moment."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if snapshot:
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return [tuple(r) for r in await conn.fetch(sql, shards, shard, *params)]
    finally:
        await conn.close()


def fold_shard(args: tuple[str, str, int, int, Books]) -> FoldResult:
    """A worker process: read its partners' entries itself, then fold them."""
    import asyncio

    dsn, snapshot, shard, shards, books = args
    return fold(asyncio.run(fetch_shard(dsn, snapshot, SHARD_SQL, shard, shards)), books)


def in_processes(job: Callable[[Any], R], jobs: Iterable[Any], workers: int,
                 done: Callable[[R], None] | None = None) -> list[R]:
    """job(args) for each args, in `workers` spawned processes (partner shards fold
    independently: their results add up); `done(result)` as each one finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(job, a) for a in jobs]
        if done is not None:
            for f in as_completed(futures):
                done(f.result())
        return [f.result() for f in futures]
