"""`make bench-scale`: end-to-end events/s against ledger and accrual processes (issue 15).

A sweep of `make bench` runs, each on a fresh stack, over ledgers × accruals sized to the
cores this machine has (ledgers + accruals at most the cores less two, which PostgreSQL
and the broker need, and at least four), topics with twice as many partitions as the larger group has
processes. Every point checks live = pure core = rebuild (the bench's own check) and its
JSON is kept under bench/results/scale-<date>-<commit>/. `--budget` stops starting new
points after so many seconds (a lent machine's time is short): the points come in an
order that gives the shape of the curve first.

    python -m bench.scale [--size scale|quick] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.run import RESULTS, _commit, log, run

# (ledgers, accruals), most telling first.
GRID = [(1, 2), (2, 4), (4, 8), (1, 8), (2, 8), (4, 4), (1, 4), (2, 2), (4, 2)]


def points(cores: int) -> list[tuple[int, int]]:
    room = max(cores - 2, 4)  # (on two cores: 1 and 2 ledgers with 2 accruals, oversubscribed)
    return [(ledgers, accruals) for ledgers, accruals in GRID if ledgers + accruals <= room]


def sweep(size: str, budget: float | None, seed: int = 42, lanes: int = 1
          ) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    commit, _ = _commit()
    out_dir = RESULTS / f"scale-{datetime.now(UTC).strftime('%Y-%m-%d')}-{commit}"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for ledgers, accruals in points(cores):
        if budget is not None and time.perf_counter() - started > budget:
            log(f"budget of {budget:.0f} s spent: the other points are left out")
            break
        partitions = max(4, 2 * max(ledgers, accruals))
        log(f"point: {ledgers} ledgers, {accruals} accruals, {partitions} partitions")
        r = run(quick=size == "quick", seed=seed, keep_db=False,
                skip=frozenset({"raw", "load", "engine", "late", "refold", "whatif"}),
                accruals=accruals, ledgers=ledgers, partitions=partitions, size=size,
                service_env={"CONSUMER_LANES": str(lanes)} if lanes > 1 else None)
        name = f"L{ledgers}-A{accruals}-P{partitions}.json"
        (out_dir / name).write_text(json.dumps(r, indent=1, default=str) + "\n")
        cpu = r.get("e2e_kafka_cpu_seconds", {})
        rows.append({
            "ledgers": ledgers, "accruals": accruals, "partitions": partitions, "lanes": lanes,
            "cores": cores, "events_per_s": r["e2e_kafka_events_per_s"],
            "cpu_us_per_event": r.get("e2e_kafka_cpu_us_per_event"),
            "postgres_cpu_s": cpu.get("postgres"),
            "ledger_cpu_s": round(sum(v for k, v in cpu.items() if k.startswith("ledger")), 2),
            "accrual_cpu_s": round(sum(v for k, v in cpu.items() if k.startswith("accrual")), 2),
            "refolds": r.get("e2e_kafka_refolds"),
            "correct": bool(r.get("correct")), "rebuild_equal": bool(r.get("rebuild_equal_to_live")),
        })
        log(f"  {rows[-1]['events_per_s']:,.0f} events/s; correct {rows[-1]['correct']}, "
            f"rebuild = live {rows[-1]['rebuild_equal']}")
    (out_dir / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("ledgers", "accruals", "partitions", "lanes", "events/s", "CPU µs/event", "postgres CPU s",
            "ledgers CPU s", "accruals CPU s", "re-folds", "live=core=rebuild")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        lines.append(" | ".join(str(x) for x in (
            r["ledgers"], r["accruals"], r["partitions"], r["lanes"], f"{r['events_per_s']:,.0f}",
            r["cpu_us_per_event"], r["postgres_cpu_s"], r["ledger_cpu_s"], r["accrual_cpu_s"],
            f"{r['refolds'] or 0:,.0f}", r["correct"] and r["rebuild_equal"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default=os.environ.get("SIZE") or "scale",
                    choices=("quick", "scale", "full"))
    ap.add_argument("--lanes", type=int, default=int(os.environ.get("LANES") or 1),
                    help="CONSUMER_LANES of every ledger and accrual")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds after which no new point is started")
    args = ap.parse_args(argv)
    rows = sweep(args.size, args.budget, lanes=args.lanes)
    print(f"\n{os.cpu_count()} cores, commit {_commit()[0]}, size {args.size}\n")
    print(table(rows))
    return 0 if rows and all(r["correct"] and r["rebuild_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
