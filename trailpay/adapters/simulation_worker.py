"""The part of a what-if that runs in each worker process: read a shard, replay it.

Imported by spawned workers, so like rebuild_worker it imports only the pure core,
orjson and (when reading) asyncpg; the shard reading and the process pool are
rebuild_worker's, shared with the rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

from trailpay.adapters.rebuild_worker import IN_SHARD, fetch_shard
from trailpay.core.attribution import entry_from_dict
from trailpay.core.fold import Books
from trailpay.core.whatif import Tally, replay

# The recorded facts, attributed ($3: the partners; every entry the ledger wrote, applied
# by the accrual or not yet: the fold refuses again what the engine refuses).
ENTRIES_SQL = ("SELECT e.payload::text FROM ledger_entries e "
               f"WHERE {IN_SHARD} AND e.partner_id = ANY($3::text[])")


def replay_payloads(payloads: Iterable[str | bytes], books: Books, start: datetime,
                    end: datetime, progress: Callable[[int], None] | None = None) -> Tally:
    return replay((entry_from_dict(orjson.loads(p)) for p in payloads), books, start, end,
                  progress)


def replay_shard(args: tuple[str, str, int, int, list[str], Books, datetime, datetime]
                 ) -> Tally:
    """A worker process: read its shard of the chosen partners' entries, replay them.

    The young generation is collected every 300,000 allocations, not 700 (as the services
    set it: Settings.gc_young_threshold): a fold allocates millions of objects that live
    until the partner is done, and at the default the collector re-scanned them so often
    that it took two thirds of the time (5.8 s -> 1.7 s for a shard of 49,000 entries)."""
    import asyncio
    import gc

    gc.set_threshold(300_000, 20, 100)

    dsn, snapshot, shard, shards, partners, books, start, end = args
    rows: Any = [r[0] for r in asyncio.run(
        fetch_shard(dsn, snapshot, ENTRIES_SQL, shard, shards, partners))]
    return replay_payloads(rows, books, start, end)
