"""The what-if over the bench programme (issue 16: 250,000 events in 10 s or less).

`python -m bench.whatif` generates the programme (bench.programme, seed 42), journals it
and writes its attributed entries into a fresh database on DATABASE_URL's server (the way
the ledger writes them; no accrual runs, so "actual" is empty), then times one what-if:
every partner, all history, a candidate that raises the usage rate. `make bench` times the
same what-if on the benchmark's own database after its ingest, postings and all (measure).

What is timed is simulation_store.execute: books, the entries read in worker processes
over partner shards, the fold, the live postings summed, the figures written.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any


def candidate_of(plan: dict[str, Any]) -> dict[str, Any]:
    doc = {**plan, "version": plan["version"] + 1}
    doc["rules"] = [{**r, "rate": "0.05"} if r["kind"] == "usage" else r for r in plan["rules"]]
    return doc


async def measure(database_url: str, workers: int | None = None) -> dict[str, Any]:
    """Time a what-if of every partner over all history on this database."""
    from trailpay.adapters import simulation_store
    from trailpay.adapters.db import create_engine, raw
    from trailpay.core.plans import parse_plan
    from trailpay.settings import Settings

    settings = Settings(database_url=database_url)
    engine = create_engine(settings)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    try:
        async with engine.begin() as conn:
            pg = await raw(conn)
            doc = await pg.fetchval("SELECT document::text FROM plan_versions "
                                    "ORDER BY journal_seq DESC LIMIT 1")
            import orjson

            plan = parse_plan(candidate_of(orjson.loads(doc)))
            types = await simulation_store.chosen_partners(conn, None, None, plan.plan_id)
            await simulation_store.create(conn, "bench-whatif", "whatif", {"bench": True})
        events = await _events(engine)
        started = time.perf_counter()
        outcome = await simulation_store.execute(
            engine, settings.asyncpg_dsn, "bench-whatif", {p: plan for p in types}, types,
            *simulation_store.period(None, None), workers)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {"whatif_seconds": seconds, "whatif_events": events,
            "whatif_entries": outcome.entries, "whatif_applied": outcome.applied,
            "whatif_refused": outcome.refused, "whatif_partners": len(types),
            "whatif_workers": workers, "whatif_events_per_s": events / seconds}


async def _events(engine) -> int:
    from trailpay.adapters.db import raw

    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval("SELECT count(DISTINCT journal_seq) FROM ledger_entries")


async def seed(database_url: str, seed_: int = 42) -> int:
    """The bench programme journaled and attributed into this (migrated, empty) database."""
    from bench.expected import attribute
    from bench.programme import generate
    from trailpay.adapters import journal_store, ledger_entries, plan_store
    from trailpay.adapters.db import create_engine
    from trailpay.adapters.journal_store import JournalRecord
    from trailpay.settings import Settings

    settings = Settings(database_url=database_url)
    prog = generate(seed_)
    events = sorted(prog.kafka + prog.http, key=lambda e: (e["time"], e["source"], e["id"]))
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await plan_store.publish_plan(conn, prog.plan)
            for pid, type_ in prog.partners:
                await plan_store.enroll_partner(conn, pid, type_, prog.plan["plan_id"], {}, None)
        seqs: list[int] = []
        for i in range(0, len(events), 10_000):
            chunk = events[i:i + 10_000]
            records = [JournalRecord(e["source"], e["id"], e["type"],
                                     e["data"].get("customer_id") or e["data"]["partner_id"],
                                     _time(e["time"]), plan_store.canonical(e)) for e in chunk]
            async with engine.begin() as conn:
                done = await journal_store.append(conn, "bench", records)
            seqs += [done.seq_of[(r.source, r.event_id)] for r in records]
        entries = attribute(list(zip(seqs, events, strict=True)))
        for i in range(0, len(entries), 20_000):
            async with engine.begin() as conn:
                await ledger_entries.write(conn, entries[i:i + 20_000], settings.topic_ledger)
    finally:
        await engine.dispose()
    return len(events)


def _time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.upper())


def main() -> int:
    import secrets

    from trailpay.adapters.db import ensure_database, migrate_sync, with_database
    from trailpay.settings import Settings

    server = os.environ.get("DATABASE_URL")
    if not server:
        print("DATABASE_URL names the PostgreSQL server to use (a database is made and dropped)")
        return 2
    name = f"trailpay_whatif_{secrets.token_hex(4)}"
    url = with_database(server, name)
    asyncio.run(ensure_database(Settings(database_url=url).async_database_url))
    try:
        migrate_sync(Settings(database_url=url))
        t = time.perf_counter()
        n = asyncio.run(seed(url))
        print(f"seeded {n:,} events in {time.perf_counter() - t:.0f}s; what-if ...", flush=True)
        r = asyncio.run(measure(url))
    finally:
        asyncio.run(_drop(server, name))
    print(f"what-if: {r['whatif_events']:,} events ({r['whatif_entries']:,} entries, "
          f"{r['whatif_partners']} partners) in {r['whatif_seconds']:.2f}s on "
          f"{r['whatif_workers']} processes: {r['whatif_events_per_s']:,.0f} events/s "
          f"({'meets' if r['whatif_seconds'] <= 10 else 'MISSES'} ≤ 10 s)")
    return 0


async def _drop(server: str, name: str) -> None:
    import asyncpg

    from trailpay.adapters.db import with_database

    conn = await asyncpg.connect(with_database(server, "postgres").replace(
        "postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
