"""Late delivery (issue 13): the programme over Kafka with a tenth of its events held back.

The same programme as the in-order Kafka phase (same seed, same events), on a fresh
database and broker, but 10% of its events, chosen at random with a fixed seed, are held
back: each is sent after the events of up to 90 days of event time later than its own
(its delay drawn uniformly from 0 to 90 days). A held-back deal parks its customer's facts
that come before it until it arrives; a held-back fact sorts before entries its partner
already applied and makes the accrual fold the partner's history again (core.timeline).
The rate is events/s from the first send until every entry is applied, as in the in-order
phase, and the result must be the same defined fold (bench.expected) and pass
`trailpay rebuild --check`. The accruals' re-fold counters are read from their /metrics.

`python -m bench.late [--quick]` runs this phase alone, beside an in-order Kafka phase of
the same programme on a fresh stack of its own, so that the ratio comes from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import expected
from bench.programme import Programme, generate
from bench.run import SIZES, Progress, _entry_count, ingest_kafka, log, setup_programme
from bench.stack import ROOT, Stack
from trailpay.adapters import rebuild

LATE_SHARE = 0.10
LATE_DAYS = 90
TARGET_RATIO = 0.7


def _time(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00"))


def deliver_late(events: list[dict[str, Any]], seed: int, share: float = LATE_SHARE,
                 days: int = LATE_DAYS) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`events` (in time order) in the order the late phase sends them, and what was held."""
    rng = random.Random(f"late-{seed}")
    held = set(rng.sample(range(len(events)), round(len(events) * share)))
    keyed = []
    holds = []
    for i, e in enumerate(events):
        at = _time(e)
        if i in held:
            hold = timedelta(seconds=rng.uniform(0, days * 86400))
            holds.append(hold.total_seconds() / 86400)
            at += hold
        keyed.append((at, i, e))
    keyed.sort(key=lambda k: (k[0], k[1]))
    overtaken = [pos - i for pos, (_, i, _) in enumerate(keyed) if i in held]
    return [e for _, _, e in keyed], {
        "late_share": share, "late_days": days, "late_held_events": len(held),
        "late_held_deals": sum(1 for i in held if events[i]["type"] == "deal.closed"),
        "late_hold_mean_days": sum(holds) / max(1, len(holds)),
        "late_overtaken_mean_events": sum(overtaken) / max(1, len(overtaken))}


async def check(stack: Stack, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Live balances against the defined fold of the events; dead letters (how many of each
    type, and one reason each), parked events."""
    import asyncpg
    from sqlalchemy.ext.asyncio import create_async_engine

    pg = await asyncpg.connect(stack.dsn)
    try:
        seqs = {(r[0], r[1]): r[2] for r in await pg.fetch(
            "SELECT source, event_id, seq FROM journal WHERE stream <> 'gateway'")}
        dead = await pg.fetchval("SELECT count(*) FROM dead_letters")
        parked = await pg.fetchval("SELECT count(*) FROM parked")
        reasons = [f"{r[0]} × {r[1]}: {r[2]}" for r in await pg.fetch(
            "SELECT count(*), type, min(reason) FROM dead_letters GROUP BY stage, type "
            "ORDER BY 1 DESC LIMIT 5")]
    finally:
        await pg.close()
    missing = [e["id"] for e in events if (e["source"], e["id"]) not in seqs]
    # Attributed in event-time order, not journal order: here a fact may be journaled before
    # its deal (it parked until the deal came); a customer's deal is its first fact in time.
    ordered = sorted(((seqs[(e["source"], e["id"])], e) for e in events
                      if (e["source"], e["id"]) in seqs), key=lambda t: (t[1]["time"], t[0]))
    engine_ = create_async_engine(
        "postgresql+asyncpg://" + stack.dsn[len("postgresql://"):], pool_size=1)
    try:
        async with engine_.connect() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            books = await rebuild.load_books(conn)
            live = await rebuild.live_balances(conn)
    finally:
        await engine_.dispose()
    core, applied, refused = expected.fold(expected.attribute(ordered), books)
    diff = rebuild.differences(core, live)
    return {"missing_events": len(missing), "dead_letters": dead, "parked": parked,
            "dead_letter_reasons": reasons, "core_applied": applied, "core_refused": refused,
            "core_differences": [str(d) for d in diff[:5]],
            "balances_equal_to_core": not missing and not diff}


def rebuild_check(stack: Stack, timeout: float) -> dict[str, Any]:
    """`trailpay rebuild --check` (exit 0: the rebuild equals live), timed."""
    started = time.perf_counter()
    try:
        cli = subprocess.run([sys.executable, "-m", "services.cli", "rebuild", "--check"],
                             env=stack.env("cli"), cwd=ROOT, capture_output=True, text=True,
                             timeout=timeout)
        code, output = cli.returncode, cli.stdout.strip()[-400:]
    except subprocess.TimeoutExpired:
        code, output = None, f"not finished after {timeout:.0f} s"
    return {"rebuild_cli_exit": code, "rebuild_cli_output": output,
            "rebuild_cli_seconds": time.perf_counter() - started}


def kafka_phase(prog: Programme, events: list[dict[str, Any]], log_dir: Path, *,
                accruals: int = 2, service_env: dict[str, str] | None = None,
                timeout: float = 3600, rebuild_timeout: float | None = 3600,
                keep_db: bool = False, ledgers: int = 1, partitions: int = 0
                ) -> dict[str, Any]:
    """`events` (the programme's Kafka events, in any order) sent over Kafka to a fresh
    stack, timed until every entry is applied; then checked against the defined fold and,
    unless rebuild_timeout is None, by `trailpay rebuild --check`."""
    stack = Stack(env_extra=dict(service_env or {}), accruals=accruals, ledgers=ledgers,
                  partitions=partitions)
    log_dir.mkdir(parents=True, exist_ok=True)
    stack.start_infra(log_dir)
    try:
        stack.start_services(log_dir)
        asyncio.run(setup_programme(stack, prog))
        cpu0 = stack.cpu()
        out: dict[str, Any] = asyncio.run(ingest_kafka(
            stack, dataclasses.replace(prog, kafka=events), Progress(stack),
            _entry_count(prog.kafka), timeout))
        cpu1 = stack.cpu()
        out["cpu_seconds"] = {k: round(cpu1[k] - cpu0.get(k, 0), 2) for k in cpu1}
        out["cpu_us_per_event"] = round(sum(out["cpu_seconds"].values()) * 1e6 / len(events), 1)
        out.update(stack.refolds())
        out.update(asyncio.run(check(stack, events)))
        if rebuild_timeout is not None:
            out.update(rebuild_check(stack, rebuild_timeout))
    finally:
        stack.stop_services()
        stack.stop_infra(keep_database=keep_db)
        if keep_db:
            log(f"  kept database {stack.database}")
    return out


def run(prog: Programme, seed: int, log_dir: Path, in_order: float | None = None, *,
        accruals: int = 2, service_env: dict[str, str] | None = None, timeout: float = 3600,
        rebuild_timeout: float | None = 3600, keep_db: bool = False, ledgers: int = 1,
        partitions: int = 0) -> dict[str, Any]:
    """The late phase, its results keyed late_* (the Kafka phase's own keys prefixed), and
    its rate over `in_order`'s (events/s of the in-order phase of the same run). A phase
    that fails is reported (late_error), not raised: the run's other results still count."""
    events, held = deliver_late(prog.kafka, seed)
    log(f"late delivery over Kafka: {len(events)} events, {held['late_held_events']} held back "
        f"up to {LATE_DAYS} days ({held['late_held_deals']} deals) ...")
    try:
        out = kafka_phase(prog, events, log_dir / "late", accruals=accruals,
                          service_env=service_env, timeout=timeout,
                          rebuild_timeout=rebuild_timeout, keep_db=keep_db, ledgers=ledgers,
                          partitions=partitions)
    except Exception as exc:
        log(f"  late phase failed: {type(exc).__name__}: {exc}")
        return {**held, "late_error": f"{type(exc).__name__}: {exc}", "late_correct": False}
    late = {f"late_{k}": v for k, v in out.items()}
    late.update(held)
    late["late_correct"] = bool(out["balances_equal_to_core"] and out["dead_letters"] == 0
                                and out["parked"] == 0 and out.get("rebuild_cli_exit") == 0)
    if in_order:
        late["late_ratio_to_in_order"] = out["e2e_kafka_events_per_s"] / in_order
    log(f"  {out['e2e_kafka_events_per_s']:,.0f} events/s, {out['refolds']:,.0f} re-folds; "
        f"balances equal to the core fold: {out['balances_equal_to_core']}, dead letters "
        f"{out['dead_letters']}; rebuild --check exit {out.get('rebuild_cli_exit')} after "
        f"{out.get('rebuild_cli_seconds', 0):.0f} s")
    return late


def summary(r: dict[str, Any]) -> str:
    """Lines for the table: the late phase's correctness, re-folds and what was held back."""
    if "late_e2e_kafka_events_per_s" not in r:
        return f"late phase: {r.get('late_error', 'not run')}"
    lines = [
        f"late phase: {r['late_held_events']:,} events held back (mean "
        f"{r['late_hold_mean_days']:.0f} days, {r['late_held_deals']} deals); live balances = "
        f"core fold: {r['late_balances_equal_to_core']}; rebuild --check exit "
        f"{r['late_rebuild_cli_exit']} ({r['late_rebuild_cli_seconds']:.0f} s); parked "
        f"{r['late_parked']}, dead letters {r['late_dead_letters']}",
        f"re-folds in the accruals: late phase {r['late_refolds']:,.0f} "
        f"({r['late_refolded_entries']:,.0f} entries folded again), in-order phase "
        f"{r.get('e2e_kafka_refolds', 0):,.0f} ({r.get('e2e_kafka_refolded_entries', 0):,.0f})"]
    lines += [f"  late phase dead letters: {reason}" for reason in r["late_dead_letter_reasons"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.late", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--accruals", type=int, default=2)
    ap.add_argument("--no-rebuild", action="store_true",
                    help="leave out `trailpay rebuild --check` after the late phase")
    ap.add_argument("--keep-db", action="store_true", help="keep the late phase's database")
    ap.add_argument("--late-only", action="store_true", help="leave out the in-order phase")
    args = ap.parse_args(argv)
    partners, customers, k_events, h_events, _, _ = SIZES["quick" if args.quick else "full"]
    prog = generate(args.seed, partners, customers, k_events, h_events)  # as `make bench`
    log_dir = Path(tempfile.mkdtemp(prefix="trailpay-bench-late-"))
    timeout = 600 if args.quick else 3600
    r: dict[str, Any] = {}
    in_order_ok = True
    if not args.late_only:
        log(f"in order over Kafka: {len(prog.kafka)} events; logs in {log_dir} ...")
        first = kafka_phase(prog, prog.kafka, log_dir / "in-order", accruals=args.accruals,
                            timeout=timeout, rebuild_timeout=None)
        r = {f"e2e_kafka_{k}" if k in ("refolds", "refolded_entries") else k: v
             for k, v in first.items()}
        in_order_ok = first["balances_equal_to_core"] and first["dead_letters"] == 0
        log(f"  {first['e2e_kafka_events_per_s']:,.0f} events/s, {first['refolds']:,.0f} "
            f"re-folds; equal to the core fold: {in_order_ok}")
    r.update(run(prog, args.seed, log_dir, r.get("e2e_kafka_events_per_s"),
                 accruals=args.accruals, timeout=timeout,
                 rebuild_timeout=None if args.no_rebuild else timeout, keep_db=args.keep_db))
    if "late_error" in r:
        print(summary(r))
        return 1
    if args.no_rebuild:
        r["late_rebuild_cli_exit"], r["late_rebuild_cli_seconds"] = "not run", 0.0
    if not args.late_only:
        ratio = r["late_ratio_to_in_order"]
        print(f"\nin order {r['e2e_kafka_events_per_s']:,.0f} events/s, late "
              f"{r['late_e2e_kafka_events_per_s']:,.0f} events/s: ratio {ratio:.2f} "
              f"({'meets' if ratio >= TARGET_RATIO else 'MISSES'} ≥ {TARGET_RATIO})")
    print(summary(r))
    return 0 if in_order_ok and r["late_balances_equal_to_core"] and r["late_dead_letters"] == 0 \
        and r["late_parked"] == 0 and (args.no_rebuild or r["late_rebuild_cli_exit"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
