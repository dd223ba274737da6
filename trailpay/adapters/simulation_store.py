"""What-if runs: read the recorded facts and the live postings, replay, store the figures apart.

A simulation reads, in one snapshot: the plan books, the chosen partners' attributed
entries (the journal's ledger_entries) and, for "actual", the postings the live accrual
made in the period. It folds the entries under the candidate terms in memory (in worker
processes over partner shards when there are many: rebuild_worker.in_processes) and
writes only to `simulations` and `simulation_results` (migration 0018). Postings,
balances, payouts and the journal are never written: that is the isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as clock, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay.adapters.db import raw
from trailpay.adapters.plan_store import load_books
from trailpay.adapters.rebuild_worker import in_processes
from trailpay.adapters.simulation_worker import ENTRIES_SQL, replay_payloads, replay_shard
from trailpay.core.money import round_money
from trailpay.core.plans import PlanError
from trailpay.core.postings import COMPANY_ACCOUNT
from trailpay.core.whatif import PlanRef, Row, Swap, Tally, compare

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
PARALLEL_FROM = 20_000  # entries: below, starting processes costs more than it saves


def period(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """[from, to] as given (whole days, `to` included) -> [start, end) instants in UTC."""
    if start and end and end < start:
        raise PlanError("to", f"must not be before from ({start})")
    return (datetime.combine(start, clock(), UTC) if start else EARLIEST,
            datetime.combine(end + timedelta(days=1), clock(), UTC) if end else LATEST)


async def chosen_partners(conn: AsyncConnection, partners: Sequence[str] | None,
                          type_: str | None, plan_id: str | None) -> dict[str, str]:
    """partner -> type: the named partners, or those of a type, or else those enrolled on
    the candidate's plan. PlanError (naming the field) when that chooses nobody."""
    pg = await raw(conn)
    if partners:
        rows = await pg.fetch("SELECT partner_id, type FROM partners "
                              "WHERE partner_id = ANY($1::text[])", list(partners))
        missing = sorted(set(partners) - {r[0] for r in rows})
        if missing:
            raise PlanError("partners", f"not enrolled: {', '.join(missing[:5])}")
    elif type_:
        rows = await pg.fetch("SELECT partner_id, type FROM partners WHERE type = $1", type_)
        if not rows:
            raise PlanError("type", f"no partner is enrolled with type {type_!r}")
    else:
        rows = await pg.fetch("SELECT partner_id, type FROM partners WHERE plan_id = $1",
                              plan_id)
        if not rows:
            raise PlanError("partners", f"no partner is enrolled on plan {plan_id!r}: name "
                                        "partners or a type")
    return {r[0]: r[1] for r in rows}


async def actual_tally(pg: Any, partners: list[str], start: datetime, end: datetime) -> Tally:
    """What the live accrual posted for these partners, dated in [start, end)."""
    rows = await pg.fetch(
        "SELECT partner_id, currency, account = $4, CASE WHEN account = $4 THEN rule_id "
        "ELSE bucket END, sum(amount) FROM postings WHERE partner_id = ANY($1::text[]) "
        "AND effective_at >= $2 AND effective_at < $3 GROUP BY 1, 2, 3, 4",
        partners, start, end, COMPANY_ACCOUNT)
    out = Tally()
    for p, cur, company, name, amount in rows:
        if company:
            out.rules[(p, cur.strip(), name)] = -amount
        else:
            out.buckets[(p, cur.strip(), name)] = amount
    return out


@dataclass
class Outcome:
    rows: list[Row]
    entries: int
    applied: int
    refused: int
    seconds: float


async def simulate(conn: AsyncConnection, dsn: str, plans: Mapping[str, PlanRef | str],
                   types: Mapping[str, str], start: datetime, end: datetime,
                   workers: int = 2, parallel_from: int = PARALLEL_FROM,
                   total: Callable[[int], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> Outcome:
    """Replay the partners in `plans` (partner -> candidate: a version, or the id of a
    published plan, whose versions apply as live) in [start, end) and compare with what
    was posted. Run it in a REPEATABLE READ transaction: workers join its
    snapshot. `total(n)` once the entries are counted, `progress(k)` as they are folded."""
    started = time.perf_counter()
    pg = await raw(conn)
    live = await load_books(conn)
    missing = sorted({v for v in plans.values() if isinstance(v, str)} - set(live.plans))
    if missing:
        raise PlanError("plan_id", f"no published plan {missing[0]!r}")
    books = Swap(live, {p: live.plans[v] if isinstance(v, str) else v
                        for p, v in plans.items()}, start, end)
    partners = sorted(plans)
    n = await pg.fetchval("SELECT count(*) FROM ledger_entries WHERE partner_id = ANY($1::text[])",
                          partners)
    if total is not None:
        total(n)
    if workers <= 1 or n < parallel_from:
        payloads = [r[0] for r in await pg.fetch(ENTRIES_SQL, 1, 0, partners)]
        candidate = await asyncio.to_thread(replay_payloads, payloads, books, start, end,
                                            progress)
    else:
        snapshot = await pg.fetchval("SELECT pg_export_snapshot()")
        shards = workers  # one scan of the entries per process
        candidate = Tally()

        def done(part: Tally) -> None:
            if progress is not None:
                progress(part.entries)

        parts = await asyncio.to_thread(
            in_processes, replay_shard, [(dsn, snapshot, k, shards, partners, books, start, end)
                                         for k in range(shards)], workers, done)
        for part in parts:
            candidate.merge(part)
    actual = await actual_tally(pg, partners, start, end)
    rows = compare(actual, candidate, types)
    return Outcome(rows, candidate.entries, candidate.applied, candidate.refused,
                   time.perf_counter() - started)


# --- the simulation tables --------------------------------------------------------------------

async def create(conn: AsyncConnection, simulation_id: str, kind: str,
                 request: Mapping[str, Any], pilot_id: str | None = None) -> None:
    """A queued simulation (a shadow run of a pilot replaces its previous one)."""
    pg = await raw(conn)
    await pg.execute("DELETE FROM simulations WHERE simulation_id = $1", simulation_id)
    await pg.execute(
        "INSERT INTO simulations (simulation_id, kind, pilot_id, request, status) "
        "VALUES ($1, $2, $3, $4::jsonb, 'queued')", simulation_id, kind, pilot_id,
        orjson.dumps(request, default=str).decode())


async def mark(engine: AsyncEngine, simulation_id: str, **fields: Any) -> None:
    """Update a simulation's status or progress, committed at once (pollers see it)."""
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=2))
    async with engine.begin() as conn:
        pg = await raw(conn)
        await pg.execute(f"UPDATE simulations SET {sets} WHERE simulation_id = $1",
                         simulation_id, *fields.values())


async def save(conn: AsyncConnection, simulation_id: str, outcome: Outcome) -> None:
    pg = await raw(conn)
    await pg.execute("DELETE FROM simulation_results WHERE simulation_id = $1", simulation_id)
    await pg.copy_records_to_table(
        "simulation_results", columns=("simulation_id", "level", "key", "currency", "figure",
                                       "actual", "candidate"),
        records=[(simulation_id, *r) for r in outcome.rows])
    await pg.execute(
        "UPDATE simulations SET status = 'done', entries_total = $2, entries_done = $2, "
        "applied = $3, refused = $4, seconds = $5, finished_at = now(), error = NULL "
        "WHERE simulation_id = $1", simulation_id, outcome.entries, outcome.applied,
        outcome.refused, outcome.seconds)


@dataclass(frozen=True, slots=True)
class SimulationView:
    simulation_id: str
    kind: str
    pilot_id: str | None
    request: dict[str, Any]
    status: str
    entries_total: int | None
    entries_done: int
    applied: int | None
    refused: int | None
    error: str | None
    seconds: float | None
    created_at: datetime
    finished_at: datetime | None
    rows: list[Row]


async def read(conn: AsyncConnection, simulation_id: str) -> SimulationView | None:
    pg = await raw(conn)
    r = await pg.fetchrow(
        "SELECT kind, pilot_id, request::text, status, entries_total, entries_done, applied, "
        "refused, error, seconds, created_at, finished_at FROM simulations "
        "WHERE simulation_id = $1", simulation_id)
    if r is None:
        return None
    rows = await pg.fetch(
        "SELECT level, key, currency, figure, actual, candidate FROM simulation_results "
        "WHERE simulation_id = $1 ORDER BY CASE level WHEN 'partner' THEN 0 WHEN 'type' "
        "THEN 1 ELSE 2 END, key, currency, figure", simulation_id)
    return SimulationView(simulation_id, r[0], r[1], orjson.loads(r[2]), r[3], r[4], r[5],
                          r[6], r[7], r[8], r[9], r[10], r[11],
                          [(x[0], x[1], x[2].strip(), x[3], round_money(x[4], x[2].strip()),
                            round_money(x[5], x[2].strip())) for x in rows])


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def execute(engine: AsyncEngine, dsn: str, simulation_id: str,
                  plans: Mapping[str, PlanRef | str], types: Mapping[str, str], start: datetime,
                  end: datetime, workers: int = 2, parallel_from: int = PARALLEL_FROM,
                  total: Callable[[int], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> Outcome:
    """Run a created simulation: status running, progress committed twice a second, then the
    figures and status done (or failed, with the error, and the exception raised again)."""
    seen = {"total": None, "done": 0}

    def counted(n: int) -> None:
        seen["total"] = n
        if total is not None:
            total(n)

    def folded(k: int) -> None:
        seen["done"] = (seen["done"] or 0) + k
        if progress is not None:
            progress(k)

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            await mark(engine, simulation_id, entries_total=seen["total"],
                       entries_done=seen["done"])

    await mark(engine, simulation_id, status="running")
    reporter = asyncio.create_task(report())
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            outcome = await simulate(conn, dsn, plans, types, start, end, workers,
                                     parallel_from, counted, folded)
        await _stop(reporter)
        async with engine.begin() as conn:
            await save(conn, simulation_id, outcome)
        return outcome
    except BaseException as exc:
        await _stop(reporter)
        await mark(engine, simulation_id, status="failed", error=f"{type(exc).__name__}: {exc}",
                   finished_at=datetime.now(UTC))
        raise
