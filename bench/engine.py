"""Plan-engine throughput on one core: the pure core over a realistic mix, no I/O.

The programme generator's mix (deals, usage, milestones, renewals, expansions,
churn, refunds, partner facts), its CloudEvents turned into facts beforehand;
timed: attribution and the `accrue` fold, in time order, from empty states.
`python -m bench.engine [events]` prints events/s.

The generated programme (some 500,000 dicts and lists of CloudEvents) is input, not engine
state: it is moved out of the garbage collector's sight (gc.freeze) before the clock starts,
so that full collections during the timed part scan what the engine made rather than the
generator's scaffolding (without that, three full collections cost some 0.7 s of a 100k run).
Besides wall-clock events/s, the CPU time of this process is reported (engine_cpu_*): on a
machine shared with other work it varies far less than the wall clock.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from bench.expected import attribute, fold
from bench.programme import generate
from trailpay.core.plans import Books, Enrolled, Enrollment, PlanHistory, parse_plan


def books_for(prog) -> Books:
    """The programme's plan (as if journaled at seq 0, before every event) and its
    partners' enrolments (each their first: from the start)."""
    plan = parse_plan(prog.plan)
    return Books({plan.plan_id: PlanHistory(plan.plan_id, [(0, plan)])},
                 {p: [Enrolled(0, Enrollment(p, t, plan.plan_id, {}))] for p, t in prog.partners})


def run(events: int = 100_000, seed: int = 42) -> dict[str, Any]:
    scale = events / 250_000
    prog = generate(seed, partners=max(50, round(500 * scale)),
                    customers=max(500, round(20_000 * scale)),
                    kafka_events=events, http_events=0, http_lanes=1)
    ordered = list(enumerate(sorted(prog.kafka, key=lambda e: e["time"]), start=1))
    books = books_for(prog)
    gc.collect()
    gc.freeze()  # the programme is input: see the module docstring
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        entries = attribute(ordered)
        attributed, cpu_attributed = time.perf_counter(), time.process_time()
        _, applied, refused = fold(entries, books)
        done, cpu_done = time.perf_counter(), time.process_time()
    finally:
        gc.unfreeze()
    seconds = done - started
    return {"engine_events": events, "engine_entries": len(entries),
            "engine_applied": applied, "engine_refused": refused,
            "engine_seconds": seconds, "engine_events_per_s": events / seconds,
            "engine_entries_per_s": len(entries) / (done - attributed),
            "engine_cpu_seconds": cpu_done - cpu_started,
            "engine_cpu_events_per_s": events / (cpu_done - cpu_started),
            "engine_cpu_entries_per_s": len(entries) / (cpu_done - cpu_attributed)}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    r = run(n)
    print(" ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
