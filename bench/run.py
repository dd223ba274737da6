"""`make bench` / `make bench QUICK=1`: trailpay end to end, beside this machine's raw limits.

One run, one table, one JSON file (bench/results/<date>-<commit>.json):
  1. raw limits: aiokafka produce / consume+parse, PostgreSQL batched INSERT / COPY
  2. end-to-end ingest: the seeded programme over Kafka, then over HTTP (batches of 100),
     from first send until every balance is final; consumer lag over time
  3. the ratio of (2) to the raw limits
  4. rebuild: the journal replayed into fresh projections, equal to live to the cent;
     what-if: the programme replayed under a candidate plan (bench.whatif), in seconds
  5. read latency of statements, balances (and payables when it exists) under load
  6. plan-engine throughput on one core
  7. late delivery: the Kafka phase again on a fresh stack, 10% of the events held back up
     to 90 days (bench.late); and the time to fold one partner again for a late entry
     (bench.refold, pure core)
and a correctness check: live balances equal the pure core's fold of the same events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import engine, expected, floor, load, pgstats, raw, refold
from bench.engine import books_for
from bench.programme import Programme, generate
from bench.stack import ROOT, Stack
from trailpay.adapters import rebuild
from trailpay.adapters.kafka import send_all
from trailpay.settings import Settings

RESULTS = ROOT / "bench" / "results"
SIZES = {  # partners, customers, kafka events, http events, load seconds, engine events
    "full": (500, 20_000, 200_000, 50_000, 30.0, 100_000),
    "quick": (100, 2_500, 20_000, 5_000, 8.0, 30_000),
    "scale": (250, 10_000, 100_000, 5_000, 0.0, 0),  # one point of `make bench-scale`
}


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def _commit() -> tuple[str, bool]:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip() or "unknown"
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    return sha, dirty


def _machine() -> dict[str, Any]:
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def _entry_count(events: list[dict[str, Any]]) -> int:
    """How many attributed entries the events make (one per partner of the fact)."""
    partners: dict[str, int] = {}
    n = 0
    for e in events:
        d = e["data"]
        if e["type"] == "deal.closed":
            partners.setdefault(d["customer_id"], len(d["partners"]))
            n += len(d["partners"])
        elif "customer_id" in d:
            n += partners[d["customer_id"]]
        else:
            n += 1
    return n


# --- phases -------------------------------------------------------------------------------

async def raw_limits(stack: Stack, prog: Programme, n: int) -> dict[str, float]:
    events = (prog.kafka + prog.http)[:n]
    out = await raw.kafka_limits(stack.bootstrap, raw.messages(events))
    out.update(await raw.pg_limits(stack.dsn, raw.journal_rows(events)))
    return out


async def setup_programme(stack: Stack, prog: Programme) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.gateway, headers=headers, timeout=30) as c:
        r = await c.put(f"/v1/plans/{prog.plan['plan_id']}/versions/{prog.plan['version']}",
                        json=prog.plan)
        r.raise_for_status()
        sem = asyncio.Semaphore(8)

        async def enrol(pid: str, type_: str) -> None:
            async with sem:
                r = await c.put(f"/v1/partners/{pid}", json={"type": type_,
                                                             "plan_id": prog.plan["plan_id"]})
                r.raise_for_status()

        await asyncio.gather(*(enrol(p, t) for p, t in prog.partners))


class Progress:
    """Samples how far the pipeline got, every 0.5 s: events sent, journaled (ledger consumer),
    entries attributed, entries applied (accrual consumer). The consumer lag is the difference:
    ledger_backlog = sent - journaled (records on trailpay.events not yet handled), and
    accrual_backlog = entries - applied (outbox not yet published, or trailpay.ledger not yet
    handled). Tansu's OffsetFetch answer does not decode in aiokafka's admin client, so the
    lag is read from the database, which is also where progress is really recorded."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.series: list[dict[str, Any]] = []
        self.rss: list[dict[str, Any]] = []
        self.t0 = time.perf_counter()

    async def counts(self, pg) -> tuple[int, int, int]:
        # Cheap on purpose: this polls the database under test twice a second. The accrual
        # progress is the applied_order sequence (it may run ahead of commits by a batch;
        # `wait_until` confirms the end with an exact count). max(applied_order) had no
        # index of its own and scanned the table: 0.44 s of PostgreSQL per Kafka phase.
        row = await pg.fetchrow(
            "SELECT (SELECT coalesce(sum(last_pos), 0) FROM journal_streams "
            "        WHERE stream <> 'gateway'),"
            "       (SELECT coalesce(max(id), 0) FROM ledger_entries),"
            "       coalesce(pg_sequence_last_value('accrual_applied_applied_order_seq'), 0)")
        return int(row[0]), int(row[1]), int(row[2])

    async def wait_until(self, phase: str, sent: dict[str, int], journal_target: int,
                         applied_target: int, timeout: float) -> float:
        """Sample every 0.5 s until journal and accrual reached their targets; returns the time."""
        import asyncpg

        pg = await asyncpg.connect(self.stack.dsn)
        deadline = time.monotonic() + timeout
        try:
            n = 0
            while True:
                journaled, entries, applied_hint = await self.counts(pg)
                now = time.perf_counter()
                point: dict[str, Any] = {
                    "phase": phase, "t": round(now - self.t0, 2), "sent": sent["n"],
                    "journaled": journaled, "entries": entries, "applied": applied_hint,
                    "ledger_backlog": sent["n"] - journaled, "accrual_backlog": entries - applied_hint}
                if n % 4 == 0:
                    self.rss.append({"t": point["t"], **self.stack.rss()})
                self.series.append(point)
                n += 1
                if sent.get("done") and journaled >= journal_target and applied_hint >= applied_target:
                    exact = await pg.fetchval("SELECT count(*) FROM accrual_applied")
                    if exact >= applied_target:
                        return time.perf_counter()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{phase}: not final after {timeout:.0f}s: {point}")
                if not all(self.stack.alive().values()):
                    raise RuntimeError(f"a service died: {self.stack.alive()}")
                await asyncio.sleep(0.5)
        finally:
            await pg.close()


async def ingest_kafka(stack: Stack, prog: Programme, progress: Progress,
                       applied_target: int, timeout: float) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer

    msgs = []
    for e in prog.kafka:
        d = e["data"]
        msgs.append(((d.get("customer_id") or d.get("partner_id")).encode(), orjson.dumps(e)))
    sent: dict[str, int] = {"n": 0}
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, enable_idempotence=False,
                                acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    t0 = time.perf_counter()

    async def send() -> float:
        # Batched per partition like trailpay's own producers: the load generator shares
        # the 2 cores with what it measures, so it should cost as little as it can.
        for i in range(0, len(msgs), raw.SEND_CHUNK):
            chunk = msgs[i:i + raw.SEND_CHUNK]
            await send_all(producer, "trailpay.events", chunk)
            sent["n"] += len(chunk)
        sent["done"] = 1
        return time.perf_counter()

    try:
        sender = asyncio.create_task(send())
        done = await progress.wait_until("kafka", sent, len(msgs), applied_target, timeout)
        sent_at = await sender
    finally:
        await producer.stop()
    return {"e2e_kafka_events": len(msgs), "e2e_kafka_seconds": done - t0,
            "e2e_kafka_events_per_s": len(msgs) / (done - t0),
            "kafka_send_events_per_s": len(msgs) / (sent_at - t0)}


async def ingest_http(stack: Stack, prog: Programme, progress: Progress, journal_before: int,
                      applied_target: int, timeout: float, batch: int = 100) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {stack.token}",
               "Content-Type": "application/cloudevents-batch+json"}
    sent: dict[str, int] = {"n": journal_before}
    latencies: list[float] = []
    t0 = time.perf_counter()

    async def lane(events: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(base_url=stack.gateway, headers=headers, timeout=60) as c:
            for i in range(0, len(events), batch):
                body = orjson.dumps(events[i:i + batch])
                started = time.perf_counter()
                r = await c.post("/v1/events", content=body)
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 202:
                    raise RuntimeError(f"POST /v1/events answered {r.status_code}: {r.text[:300]}")
                sent["n"] += len(events[i:i + batch])

    async def send_all() -> float:
        await asyncio.gather(*(lane(lane_events) for lane_events in prog.http_lanes))
        sent["done"] = 1
        return time.perf_counter()

    sender = asyncio.create_task(send_all())
    done = await progress.wait_until("http", sent, journal_before + len(prog.http),
                                     applied_target, timeout)
    sent_at = await sender
    return {"http_events": len(prog.http), "http_batch": batch,
            "http_lanes": len(prog.http_lanes),
            "http_intake_events_per_s": len(prog.http) / (sent_at - t0),
            "http_batch_p50_ms": load.percentile(latencies, 50),
            "http_batch_p99_ms": load.percentile(latencies, 99),
            "e2e_http_seconds": done - t0, "e2e_http_events_per_s": len(prog.http) / (done - t0)}


async def check_and_rebuild(stack: Stack, prog: Programme) -> dict[str, Any]:
    """Live balances vs the pure core's fold of the generated events; then the rebuild."""
    import asyncpg
    from sqlalchemy.ext.asyncio import create_async_engine

    pg = await asyncpg.connect(stack.dsn)
    try:
        seqs = {(r[0], r[1]): r[2] for r in await pg.fetch(
            "SELECT source, event_id, seq FROM journal WHERE stream <> 'gateway'")}
        dead = await pg.fetchval("SELECT count(*) FROM dead_letters")
        parked = await pg.fetchval("SELECT count(*) FROM parked")
        # What the pipeline writes per event: the floor under any end-to-end rate.
        rows = {t: await pg.fetchval(f"SELECT count(*) FROM {t}") for t in (
            "journal", "ledger_entries", "accrual_applied", "postings", "balances",
            "partner_state", "customers")}
        state_bytes = await pg.fetchval("SELECT coalesce(sum(pg_column_size(state)), 0) "
                                        "FROM partner_state")
    finally:
        await pg.close()
    missing = [e["id"] for e in prog.kafka + prog.http if (e["source"], e["id"]) not in seqs]
    ordered = sorted(((seqs[(e["source"], e["id"])], e) for e in prog.kafka + prog.http
                      if (e["source"], e["id"]) in seqs), key=lambda t: t[0])
    engine_ = create_async_engine(
        "postgresql+asyncpg://" + stack.dsn[len("postgresql://"):], pool_size=1)
    try:
        async with engine_.connect() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            books = await rebuild.load_books(conn)
            live = await rebuild.live_balances(conn)
            started = time.perf_counter()
            core_balances, applied, refused = expected.fold(expected.attribute(ordered), books)
            core_s = time.perf_counter() - started
            core_diff = rebuild.differences(core_balances, live)
            r = await rebuild.rebuild(conn, check=True)
    finally:
        await engine_.dispose()
    log(f"rebuild in-process: {r.events} events, {r.entries} entries in {r.seconds:.1f}s")
    cli = subprocess.run([sys.executable, "-m", "services.cli", "rebuild", "--check"],
                         env=stack.env("cli"), cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    return {
        "correct": not missing and not core_diff and dead == 0 and parked == 0,
        "missing_events": len(missing), "dead_letters": dead, "parked": parked,
        "table_rows": rows, "partner_state_bytes": state_bytes,
        "balance_rows": len(live), "core_applied": applied, "core_refused": refused,
        "core_fold_seconds": core_s, "core_differences": [str(d) for d in core_diff[:5]],
        "rebuild_events": r.events, "rebuild_entries": r.entries, "rebuild_seconds": r.seconds,
        "rebuild_events_per_s": r.events_per_s, "rebuild_entries_per_s": r.entries / r.seconds,
        "rebuild_equal_to_live": not r.differences,
        "rebuild_differences": [str(d) for d in (r.differences or [])[:5]],
        "rebuild_cli_exit": cli.returncode, "rebuild_cli_output": cli.stdout.strip()[-400:],
    }


async def read_latency(stack: Stack, prog: Programme, seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=10) as c:
        paths = (await c.get("/openapi.json")).json()["paths"]
    has_payables = "/v1/payables" in paths
    partners = [p for p, _ in prog.partners]
    months = [f"{y}-{m:02d}" for y in (2025, 2026) for m in range(1, 13)][:18]

    def pick(rng: random.Random) -> tuple[str, str]:
        roll = rng.random()
        p = rng.choice(partners)
        if has_payables and roll < 0.2:
            return "payables", "/v1/payables?limit=100"
        if roll < 0.6:
            return "statements", f"/v1/partners/{p}/statements/{rng.choice(months)}"
        return "balances", f"/v1/partners/{p}/balances"

    rss: list[dict[str, Any]] = []  # the services' memory while they serve the load

    async def sample_rss() -> None:
        t0 = time.monotonic()
        while True:
            rss.append({"t": round(time.monotonic() - t0, 2), **stack.rss()})
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample_rss())
    try:
        samples = await load.run_load("127.0.0.1", stack.gateway_port, stack.token, pick,
                                      clients=50, seconds=seconds)
    finally:
        sampler.cancel()
    out: dict[str, Any] = {"load_clients": 50, "load_seconds": seconds,
                           "endpoints": load.summary(samples, seconds),
                           "payables_available": has_payables, "rss_load_series_mib": rss}
    # Closed loop: latency ~ clients / throughput, so the throughput is reported beside it.
    out["read_requests_per_s"] = sum(e["per_s"] for e in out["endpoints"].values())
    for name in ("statement", "balance", "payable"):
        s = out["endpoints"].get(name + "s", {})
        for p in ("p50", "p95", "p99"):
            out[f"{name}_{p}_ms"] = s.get(f"{p}_ms")
    return out


# --- the run ------------------------------------------------------------------------------

class Profilers:
    """py-spy (the `bench` extra) sampling the services during a phase: collapsed stacks."""

    def __init__(self, stack: Stack, out: Path, enabled: bool) -> None:
        self.stack, self.out, self.enabled = stack, out, enabled
        self.procs: list[subprocess.Popen] = []
        self.phase = ""
        self.pg_before: dict[int, tuple] = {}
        self.pg_statements: dict[str, list[dict[str, Any]]] = {}

    def start(self, phase: str, names: tuple[str, ...]) -> None:
        if not self.enabled:
            return
        self.phase = phase
        self.pg_before = asyncio.run(pgstats.snapshot(self.stack.dsn))
        for name in names:
            target = self.out / f"{phase}-{name}.txt"
            self.procs.append(subprocess.Popen(
                [shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                 "record", "--format", "raw", "--rate", os.environ.get("BENCH_PROFILE_RATE", "50"),
                 "--nonblocking",
                 "-o", str(target), "--pid", str(self.stack.procs[name].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        import signal

        if not self.enabled:
            return
        rows = pgstats.top(self.pg_before, asyncio.run(pgstats.snapshot(self.stack.dsn)))
        self.pg_statements[self.phase] = rows
        pgstats.write(self.out / f"{self.phase}-postgres.txt", self.phase, rows)
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def run(quick: bool, seed: int, keep_db: bool, profile: bool = False,
        skip: frozenset[str] = frozenset(), service_env: dict[str, str] | None = None,
        accruals: int = 2, ledgers: int = 1, partitions: int = 0,
        size: str | None = None) -> dict[str, Any]:
    size = size or ("quick" if quick else "full")
    partners, customers, k_events, h_events, load_s, engine_n = SIZES[size]
    commit, dirty = _commit()
    result: dict[str, Any] = {"quick": quick, "commit": commit, "dirty": dirty, "seed": seed,
                              "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": _machine()}
    log_dir = Path(tempfile.mkdtemp(prefix="trailpay-bench-"))
    log(f"{'QUICK' if quick else 'FULL'} run at {commit}{' (dirty tree)' if dirty else ''}; "
        f"logs in {log_dir}")
    t = time.perf_counter()
    prog = generate(seed, partners, customers, k_events, h_events)
    result["programme"] = {"partners": partners, "customers": customers,
                           "kafka_events": len(prog.kafka), "http_events": len(prog.http),
                           "by_type": prog.counts, "generate_seconds": time.perf_counter() - t}
    log(f"programme: {len(prog.kafka)} Kafka + {len(prog.http)} HTTP events from seed {seed}")
    stack = Stack(env_extra=dict(service_env or {}), accruals=accruals, ledgers=ledgers,
                  partitions=partitions)
    result["service_env"] = stack.env_extra
    result["size"] = size
    result["accrual_processes"] = accruals
    result["ledger_processes"] = ledgers
    result["partitions"] = partitions or Settings.model_fields["topic_partitions"].default
    stack.start_infra(log_dir, statement_stats=profile)
    result["postgres"] = stack.postgres_kind
    try:
        if "raw" not in skip:
            log("raw limits ...")
            result.update(asyncio.run(raw_limits(stack, prog, min(len(prog.kafka), 100_000))))
        log(f"starting ledger ×{ledgers}, accrual ×{accruals} on {result['partitions']} "
            "partitions, gateway ...")
        stack.start_services(log_dir)
        result["rss_start_mib"] = stack.rss()
        asyncio.run(setup_programme(stack, prog))
        kafka_entries = result["kafka_entries"] = _entry_count(prog.kafka)
        all_entries = _entry_count(prog.kafka + prog.http)
        result["expected_entries"] = all_entries
        progress = Progress(stack)
        timeout = 600 if quick else 3600
        profilers = Profilers(stack, log_dir, profile)
        log(f"end to end over Kafka: {len(prog.kafka)} events ...")
        profilers.start("kafka", tuple(stack.worker_names))
        cpu0 = stack.cpu()
        result.update(asyncio.run(ingest_kafka(stack, prog, progress, kafka_entries, timeout)))
        cpu1 = stack.cpu()
        result["e2e_kafka_cpu_seconds"] = {k: round(cpu1[k] - cpu0.get(k, 0), 2) for k in cpu1}
        # All processes' CPU per event: what 2 cores divide into (2e6 / this = the cap).
        result["e2e_kafka_cpu_us_per_event"] = round(
            sum(result["e2e_kafka_cpu_seconds"].values()) * 1e6 / len(prog.kafka), 1)
        result.update({f"e2e_kafka_{k}": v for k, v in stack.refolds().items()})
        profilers.stop()
        log(f"  {result['e2e_kafka_events_per_s']:,.0f} events/s; over HTTP: "
            f"{len(prog.http)} events ...")
        profilers.start("http", ("gateway", *stack.worker_names))
        result.update(asyncio.run(ingest_http(stack, prog, progress, len(prog.kafka),
                                              all_entries, timeout)))
        cpu2 = stack.cpu()
        result["e2e_http_cpu_seconds"] = {k: round(cpu2[k] - cpu1.get(k, 0), 2) for k in cpu2}
        profilers.stop()
        result["rss_after_ingest_mib"] = stack.rss()
        log("checking balances against the pure core, rebuilding ...")
        result.update(asyncio.run(check_and_rebuild(stack, prog)))
        if "whatif" not in skip:
            from bench import whatif  # spawned fold workers need not import it

            log("what-if: every partner, all history, the usage rate raised ...")
            result.update(asyncio.run(whatif.measure(stack.dsn)))
        if "load" not in skip:
            log(f"read latency: 50 clients for {load_s:.0f}s ...")
            profilers.start("load", ("gateway",))
            cpu3 = stack.cpu()
            result.update(asyncio.run(read_latency(stack, prog, load_s)))
            cpu4 = stack.cpu()
            result["load_cpu_seconds"] = {k: round(cpu4[k] - cpu3.get(k, 0), 2) for k in cpu4}
            profilers.stop()
        result["rss_end_mib"] = stack.rss()
        result["rss_series_mib"] = progress.rss
        result["lag_series"] = progress.series
    finally:
        stack.stop_services()
        stack.stop_infra(keep_database=keep_db)
    if "late" not in skip:
        from bench import late  # it builds on this module's phases: imported late

        result.update(late.run(prog, seed, log_dir, result["e2e_kafka_events_per_s"],
                               accruals=accruals, service_env=service_env, timeout=timeout,
                               ledgers=ledgers, partitions=partitions))
    if "refold" not in skip:
        samples = 50 if quick else 200
        log(f"re-fold of one partner (50,000 entries in a year) for {samples} late entries ...")
        result.update(refold.run(samples, seed))
    if "engine" not in skip:
        log(f"plan engine on one core: {engine_n} events ...")
        result.update(engine.run(engine_n, seed))
        # The pipeline against the machine's Python speed, measured in the same run: this
        # machine's speed has varied twofold between days, and both rates move with it.
        result["e2e_ratio_to_engine"] = (result["e2e_kafka_events_per_s"]
                                         / result["engine_events_per_s"])
    if "raw" not in skip:
        limits = {k: result[k] for k in ("kafka_produce_msgs_per_s", "kafka_consume_msgs_per_s",
                                         "pg_batch_insert_rows_per_s", "pg_copy_rows_per_s")}
        slowest = min(limits, key=limits.get)
        result["slowest_raw_limit"] = slowest
        result["e2e_ratio_to_slowest_raw"] = result["e2e_kafka_events_per_s"] / limits[slowest]
        result["e2e_ratio_to_pg_batch"] = (result["e2e_kafka_events_per_s"]
                                           / result["pg_batch_insert_rows_per_s"])
        if "engine" not in skip:  # the floor: the parts the design requires, each alone
            log("the floor: codec parts alone ...")
            result.update(floor.floor(result, floor.codec_parts(prog.kafka, books_for(prog))))
    result["profiles"] = str(log_dir) if profile else None
    if profile:
        result["pg_statements"] = profilers.pg_statements
    peak = {}
    for name in (*stack.worker_names, "gateway"):
        vals = [s[name] for s in result.get("rss_series_mib", []) + result.get(
            "rss_load_series_mib", []) if s.get(name)]
        peak[name] = max(vals) if vals else None
    result["rss_peak_mib"] = peak
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


TARGETS = [  # key, target, higher is better
    ("e2e_kafka_events_per_s", 20_000, True), ("e2e_ratio_to_pg_batch", 0.25, True),
    ("http_intake_events_per_s", 5_000, True), ("rebuild_events_per_s", 50_000, True),
    ("statement_p99_ms", 50, False), ("late_ratio_to_in_order", 0.7, True),
    ("refold_p99_ms", 50, False), ("pipeline_to_floor", 1.15, False),
    ("whatif_seconds", 10, False),
]


def table(r: dict[str, Any]) -> str:
    def f(v: Any, unit: str = "") -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:,.2f}{unit}" if v < 10 else f"{v:,.0f}{unit}"
        return f"{v}{unit}"

    targets = {k: (t, hi) for k, t, hi in TARGETS}

    def verdict(key: str) -> str:
        if key not in targets or r.get(key) is None:
            return ""
        t, hi = targets[key]
        ok = r[key] >= t if hi else r[key] <= t
        return f"{'meets' if ok else 'MISSES'} {'≥' if hi else '≤'} {t:,}"

    rows = [
        ("1 raw", "aiokafka produce (msgs/s)", "kafka_produce_msgs_per_s"),
        ("1 raw", "aiokafka consume+parse (msgs/s)", "kafka_consume_msgs_per_s"),
        ("1 raw", "PostgreSQL batched INSERT (rows/s)", "pg_batch_insert_rows_per_s"),
        ("1 raw", "PostgreSQL COPY (rows/s)", "pg_copy_rows_per_s"),
        ("2 e2e", "Kafka ingest, send → balances final (events/s)", "e2e_kafka_events_per_s"),
        ("2 e2e", "HTTP intake, batches of 100 (events/s)", "http_intake_events_per_s"),
        ("2 e2e", "HTTP send → balances final (events/s)", "e2e_http_events_per_s"),
        ("3 ratio", "e2e Kafka / PostgreSQL batched INSERT", "e2e_ratio_to_pg_batch"),
        ("3 ratio", f"e2e Kafka / slowest raw ({r.get('slowest_raw_limit')})",
         "e2e_ratio_to_slowest_raw"),
        ("3 ratio", "e2e Kafka / plan engine on one core (same run)", "e2e_ratio_to_engine"),
        ("3 ratio", "pipeline CPU ÷ the floor (same run)", "pipeline_to_floor"),
        ("4 rebuild", "journal replay (events/s)", "rebuild_events_per_s"),
        ("4 what-if", "what-if, every partner, all history (s)", "whatif_seconds"),
        ("5 read", "statements p50 / p95 / p99 (ms)", "statement_p99_ms"),
        ("5 read", "balances p50 / p95 / p99 (ms)", "balance_p99_ms"),
        ("5 read", "payables p50 / p95 / p99 (ms)", "payable_p99_ms"),
        ("5 read", "all reads, 50 closed-loop clients (requests/s)", "read_requests_per_s"),
        ("6 engine", "plan engine, one core (events/s)", "engine_events_per_s"),
        ("7 late", "Kafka ingest, 10% held back ≤ 90 days (events/s)",
         "late_e2e_kafka_events_per_s"),
        ("7 late", "late ÷ in-order Kafka ingest (same run)", "late_ratio_to_in_order"),
        ("7 late", "re-fold, 1 late entry, 50k entries: p50/p95/p99 ms", "refold_p99_ms"),
    ]
    lines = [f"{'':9} {'measure':<52} {'value':>22}  target",
             "-" * 100]
    for section, label, key in rows:
        if key.endswith("_p99_ms"):
            base = key[:-len("_p99_ms")]
            value = " / ".join(f(r.get(f"{base}_{p}_ms")) for p in ("p50", "p95", "p99"))
            if base == "payable" and not r.get("payables_available"):
                value = "not available"
        else:
            value = f(r.get(key))
        lines.append(f"{section:9} {label:<52} {value:>22}  {verdict(key)}")
    lines.append("-" * 100)
    lines.append(f"correct: live balances = pure core fold: {r.get('correct')}; rebuild = live: "
                 f"{r.get('rebuild_equal_to_live')}; dead letters {r.get('dead_letters')}")
    rss = " ".join(f"{n} {r['rss_start_mib'].get(n) or 0:.0f}→{r['rss_end_mib'].get(n) or 0:.0f}"
                   f" (peak {r['rss_peak_mib'].get(n) or 0:.0f})"
                   for n in r["rss_end_mib"]) if r.get("rss_end_mib") else "n/a"
    if "pipeline_to_floor" in r:
        lines.append(floor.report(r))
    if "late_correct" in r:
        from bench.late import summary  # bench.late builds on this module: imported late

        lines.append(summary(r))
    lines.append(f"RSS MiB start→end: {rss}")
    for key, label in (("e2e_kafka_cpu_seconds", "Kafka ingest"), ("load_cpu_seconds", "read load")):
        if r.get(key):
            per_event = (f" ({r['e2e_kafka_cpu_us_per_event']:.0f} µs per event)"
                         if key == "e2e_kafka_cpu_seconds" and r.get("e2e_kafka_cpu_us_per_event")
                         else "")
            lines.append(f"CPU seconds during {label}{per_event}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(r[key].items(), key=lambda kv: -kv[1])))
    lines.append(f"quick={r['quick']} commit={r['commit']} machine={r['machine']['cores']} cores, "
                 f"{r['machine']['memory_gib']} GiB; postgres={r.get('postgres')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK", "") in
                    ("1", "true", "yes"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep-db", action="store_true", help="keep the run's database")
    ap.add_argument("--no-save", action="store_true", help="print only; write no results file")
    ap.add_argument("--profile", action="store_true", default=os.environ.get("PROFILE", "") in
                    ("1", "true", "yes"),
                    help="sample the services with py-spy (pip install -e '.[bench]')")
    ap.add_argument("--skip", default="",
                    help="comma-separated phases to leave out: raw,load,engine,late,refold,whatif")
    ap.add_argument("--accruals", type=int, default=int(os.environ.get("ACCRUALS") or 2),
                    help="accrual processes in the consumer group (deploy/k8s runs 2)")
    ap.add_argument("--ledgers", type=int, default=int(os.environ.get("LEDGERS") or 1),
                    help="ledger processes in their consumer group (issue 15)")
    ap.add_argument("--partitions", type=int, default=int(os.environ.get("PARTITIONS") or 0),
                    help="partitions of every topic (default: Settings.topic_partitions)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the services (a tuning experiment)")
    args = ap.parse_args(argv)
    skip = frozenset(s for s in args.skip.split(",") if s)
    service_env = dict(e.split("=", 1) for e in args.env)
    result = run(args.quick, args.seed, args.keep_db, args.profile, skip, service_env,
                 args.accruals, args.ledgers, args.partitions)
    if skip or args.profile or service_env:
        args.no_save = True  # a partial or profiled run is not a result
    print()
    print(table(result))
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = (f"{datetime.now(UTC).strftime('%Y-%m-%d')}-{result['commit']}"
                f"{'-quick' if result['quick'] else ''}.json")
        (RESULTS / name).write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"\nwritten to {(RESULTS / name).relative_to(ROOT)}")
    late_ok = result.get("late_correct", True)
    return 0 if result.get("correct") and result.get("rebuild_equal_to_live") and late_ok else 1


if __name__ == "__main__":
    sys.exit(main())
