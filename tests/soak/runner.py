"""`make soak`: steady load with poison mixed in while the services are killed and the
database and broker restart; then count what was lost, doubled or answered 5xx.

The soak starts everything it needs apart from the test session: an embedded
PostgreSQL (stopped and started once), a Tansu broker (restarted once, empty: memory
storage), the gateway, and the ledger and accrual as processes that it SIGKILLs at
random instants and starts again at once. Load goes over HTTP (batches, answered 202,
or 4xx for the poison) and over Kafka (valid deals, and records that must end as dead
letters: not JSON, a NUL in an id, an unknown type, a 400-digit amount).

What counts as accepted: every event answered 202, and every valid event the Kafka
producer had acknowledged. A memory broker forgets what it holds when it restarts, and
a Kafka producer outside trailpay cannot be told; so the Kafka load is paused and
drained into the journal before the broker restart, and resumes once the consumers
are ready on the new broker (the HTTP load is not paused: a 202 is durable,
adapters/intake.py). A 503 with Retry-After while PostgreSQL restarts is the
documented answer (nothing was accepted; the client sends again) and is counted apart;
any other 5xx counts as a failure.

Lost: accepted events not journaled at the end. Doubled: entries applied more than
once, or a partner's balance off the sum of its deals' commissions. Both must be 0.
Broker lost: Kafka events the broker acknowledged but never served to anyone (read back
from the beginning of its log, outside any group, at the end). Tansu's memory storage
does this just after a restart, under concurrent producers; such an event never reached
trailpay, so it is reported apart and not counted as accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
from trailpay.adapters.kafka import ensure_topics
from trailpay.settings import Settings

TOKEN = "soak-admin-token"
PLAN = """
plan_id: soak
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller]
rules:
  - {id: anchor, kind: upfront, base: acv, rate: "0.10"}
clawback: {window_days: 180, mode: full}
payout: {minimum: "100.00", hold_days: 30, cadence: monthly}
"""
PARTNERS = [f"P-SOAK-{i}" for i in range(8)]


@dataclass
class Tally:
    kills: Counter = field(default_factory=Counter)
    accepted: dict[str, Decimal] = field(default_factory=dict)  # event id -> commission
    partner_of: dict[str, str] = field(default_factory=dict)
    http_status: Counter = field(default_factory=Counter)
    server_errors: int = 0        # 500s, and 503s without Retry-After
    unavailable: int = 0          # 503 with Retry-After (the database restarting)
    poison_sent: int = 0
    max_stall: float = 0.0
    restarts: list[str] = field(default_factory=list)
    kafka_quiet: asyncio.Event = field(default_factory=asyncio.Event)
    kafka_sent: set[str] = field(default_factory=set)  # accepted by the broker, not by trailpay
    undrained: int = 0  # Kafka events not journaled when the broker was restarted anyway
    broker_lives: int = 1  # the broker's restarts, plus one
    acked: set[str] = field(default_factory=set)  # Kafka events acked in the broker's last life


def _deal(n: int, partner: str) -> tuple[dict[str, Any], Decimal]:
    acv = Decimal(1000 + (n * 37) % 9000)
    event = {"specversion": "1.0", "id": f"soak-{n}", "source": "crm.soak",
             "type": "deal.closed", "time": "2026-03-01T10:00:00Z",
             "data": {"deal_id": f"D-{n}", "customer_id": f"C-{n}", "kind": "new",
                      "currency": "USD", "acv": f"{acv}.00", "tcv": f"{acv}.00",
                      "term_months": 12, "start_date": "2026-03-01",
                      "partners": [{"partner_id": partner, "role": "sourced", "share": "1"}]}}
    return event, (acv * Decimal("0.10")).quantize(Decimal("0.01"))


def _kafka_poison(n: int) -> bytes:
    good, _ = _deal(n, PARTNERS[0])
    kind = n % 4
    if kind == 0:
        return b"\x00not json at all"
    if kind == 1:
        return orjson.dumps({**good, "id": f"soak-nul-{n}\u0000x"})
    if kind == 2:
        return orjson.dumps({**good, "type": "deal.opened"})
    return orjson.dumps({**good, "data": {**good["data"], "acv": "9" * 400}})


class Stack:
    """PostgreSQL, broker, gateway, ledger and accrual for one soak."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg = EmbeddedPostgres(root / "pg")
        self.broker = TansuBroker()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ops: dict[str, int] = {"ledger": free_port(), "accrual": free_port()}
        self.port = free_port()
        self.settings: Settings | None = None

    async def start(self) -> Settings:
        url = with_database(await asyncio.to_thread(self.pg.start), "trailpay")
        bootstrap = await asyncio.to_thread(self.broker.start, self.root / "tansu.log")
        self.settings = Settings(database_url=url, kafka_bootstrap_servers=bootstrap)
        await ensure_database(self.settings.async_database_url)
        await asyncio.to_thread(migrate_sync, self.settings)
        for name in ("gateway", "ledger", "accrual"):
            self.spawn(name)
        return self.settings

    def env(self, name: str) -> dict[str, str]:
        assert self.settings is not None
        env = {**os.environ, "DATABASE_URL": self.settings.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
               "TRAILPAY_ADMIN_TOKEN": TOKEN, "GATEWAY_PORT": str(self.port),
               "LOG_LEVEL": os.environ.get("SOAK_LOG_LEVEL", "ERROR"),
               "CONSUMER_BATCH_MAX": "500", "CONSUMER_POLL_MS": "50",
               "CONSUMER_SESSION_TIMEOUT_MS": "3000", "REDELIVER_SWEEP_SECONDS": "1",
               "REDELIVER_SECONDS": "5", "INTAKE_SEND_TIMEOUT": "2", "RETRY_AFTER_SECONDS": "1",
               "DB_POOL_SIZE": "4", "API_KEY_CACHE_SECONDS": "60"}
        if name in self.ops:
            env["METRICS_PORT"] = str(self.ops[name])
        return env

    def spawn(self, name: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "services.cli", name],
                                            env=self.env(name), stdout=log, stderr=log)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.spawn(name)

    async def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                await asyncio.to_thread(p.wait, 30)
            except subprocess.TimeoutExpired:
                p.kill()
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.pg.stop)


async def _ready(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready in {timeout:.0f}s")


async def _pg(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.asyncpg_dsn)


async def _setup(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/plans/soak/versions/1", content=PLAN.encode(),
                         headers={"Content-Type": "application/yaml"})
    assert r.status_code in (200, 201), r.text
    for p in PARTNERS:
        r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": "soak"})
        assert r.status_code in (200, 201), r.text


async def _http_load(client: httpx.AsyncClient, tally: Tally, numbers, stop: asyncio.Event,
                     rate: float) -> None:
    while not stop.is_set():
        batch, commissions = [], {}
        for _ in range(10):
            n = next(numbers)
            event, commission = _deal(n, PARTNERS[n % len(PARTNERS)])
            batch.append(event)
            commissions[event["id"]] = (commission, event["data"]["partners"][0]["partner_id"])
        if random.random() < 0.2:  # poison at the door: refused with a 4xx, never stored
            batch[3] = {**batch[3], "id": "bad\u0000id"}
            commissions.clear()
        try:
            r = await client.post("/v1/events", json=batch,
                                  headers={"Content-Type": "application/cloudevents-batch+json"})
        except httpx.HTTPError:
            tally.http_status["no answer"] += 1
            await asyncio.sleep(0.5)
            continue
        tally.http_status[r.status_code] += 1
        if r.status_code == 202:
            for eid, (c, p) in commissions.items():
                tally.accepted[eid], tally.partner_of[eid] = c, p
        elif r.status_code == 503 and r.headers.get("retry-after"):
            tally.unavailable += 1
            await asyncio.sleep(float(r.headers["retry-after"]))
        elif r.status_code >= 500:
            tally.server_errors += 1
        await asyncio.sleep(10 / rate)


async def _kafka_load(settings: Settings, tally: Tally, numbers, stop: asyncio.Event,
                      paused: asyncio.Event, rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        while not stop.is_set():
            if paused.is_set():
                tally.kafka_quiet.set()  # no send in flight: the drain may start
                await asyncio.sleep(0.1)
                continue
            tally.kafka_quiet.clear()
            n = next(numbers)
            if n % 25 == 0:
                value, key, good = _kafka_poison(n), b"poison", None
                tally.poison_sent += 1
            else:
                event, commission = _deal(n, PARTNERS[n % len(PARTNERS)])
                value, key = orjson.dumps(event), event["data"]["customer_id"].encode()
                good = (event["id"], commission, event["data"]["partners"][0]["partner_id"])
            try:
                lives = tally.broker_lives
                await asyncio.wait_for(producer.send_and_wait(settings.topic_events, value,
                                                              key=key), 10)
            except Exception:  # noqa: BLE001 - not acknowledged: not accepted
                await asyncio.sleep(0.5)
                continue
            if good is not None:
                tally.accepted[good[0]], tally.partner_of[good[0]] = good[1], good[2]
                tally.kafka_sent.add(good[0])
                if tally.broker_lives == lives:
                    tally.acked.add(good[0])
            await asyncio.sleep(1 / rate)
    finally:
        await producer.stop()


async def _watch_stalls(stack: Stack, tally: Tally, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=1.0) as c:
        while not stop.is_set():
            for port in stack.ops.values():
                try:
                    text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError:
                    continue
                for line in text.splitlines():
                    if line.startswith("trailpay_stalled_seconds{"):
                        tally.max_stall = max(tally.max_stall, float(line.rsplit(" ", 1)[1]))
            await asyncio.sleep(0.5)


async def _journaled(settings: Settings, ids: list[str]) -> set[str]:
    conn = await _pg(settings)
    try:
        rows = await conn.fetch("SELECT event_id FROM journal WHERE source = 'crm.soak' "
                                "AND event_id = ANY($1::text[])", ids)
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def _drain_kafka(settings: Settings, tally: Tally, timeout: float = 120.0) -> None:
    """Wait until every event sent over Kafka is journaled (HTTP events need not be: the
    intake table keeps them); what is still missing at the deadline is counted."""
    deadline = time.monotonic() + timeout
    ids = sorted(tally.kafka_sent)
    missing = len(ids)
    while time.monotonic() < deadline:
        try:
            missing = len(ids) - len(await _journaled(settings, ids))
            if not missing:
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    tally.undrained += missing


async def _unserved(settings: Settings, acked: set[str]) -> list[str]:
    """Kafka events the broker acknowledged but does not serve: read its topic from the
    beginning, outside any group, and list the acknowledged ids it never hands out. Such an
    event never reached trailpay; it is the broker's loss, counted apart from trailpay's.
    (Tansu 0.6.0's memory storage, just after a restart, under concurrent producers: see
    docs/decisions.md, "A memory broker restarted".)"""
    if not acked:
        return []
    consumer = AIOKafkaConsumer(settings.topic_events,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen: set[str] = set()
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    with contextlib.suppress(Exception):
                        seen.add(orjson.loads(r.value)["id"])
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
    finally:
        await consumer.stop()
    return sorted(eid for eid in acked if eid not in seen)


async def _chaos(stack: Stack, tally: Tally, duration: float, kills: int,
                 paused: asyncio.Event, stop: asyncio.Event, restart_broker: bool = True) -> None:
    assert stack.settings is not None
    started = time.monotonic()
    interval = duration / (kills + 3)
    pg_at, broker_at = duration / 3, 2 * duration / 3
    pg_done, broker_done = False, not restart_broker
    while not stop.is_set() and time.monotonic() - started < duration:
        await asyncio.sleep(random.uniform(0.5, 1.5) * interval)
        elapsed = time.monotonic() - started
        if not pg_done and elapsed >= pg_at:
            pg_done = True
            await asyncio.to_thread(stack.pg.stop)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(stack.pg.start)
            tally.restarts.append(f"postgresql at {elapsed:.0f}s")
            continue
        if not broker_done and elapsed >= broker_at:
            broker_done = True
            paused.set()  # see the module doc: a memory broker forgets what it holds
            tally.kafka_quiet.clear()
            await asyncio.wait_for(tally.kafka_quiet.wait(), 30)
            await _drain_kafka(stack.settings, tally)
            tally.broker_lives += 1
            tally.acked.clear()  # all journaled: what the broker held no longer matters
            await asyncio.to_thread(stack.broker.stop)
            await asyncio.to_thread(stack.broker.start, stack.root / "tansu.log")
            # Topics first, as `trailpay dev` does: with clients reconnecting, Tansu 0.6.0
            # may create a topic twice at once, and a partition's offsets then start again
            # below batches it still holds; records it acknowledged there are never served
            # (docs/decisions.md, "A memory broker restarted").
            await ensure_topics(stack.settings)
            for port in stack.ops.values():  # the consumers are back on the new topics
                await _ready(f"http://127.0.0.1:{port}/readyz")
            paused.clear()
            tally.restarts.append(f"broker at {elapsed:.0f}s")
            continue
        name = random.choice(("ledger", "accrual"))
        stack.kill(name)
        tally.kills[name] += 1


async def _settled(settings: Settings, tally: Tally, timeout: float) -> dict[str, Any]:
    """Wait until every accepted event is journaled and every entry applied; then count."""
    deadline = time.monotonic() + timeout
    ids = list(tally.accepted)
    while True:
        try:
            conn = await _pg(settings)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        try:
            journaled = {r[0] for r in await conn.fetch(
                "SELECT event_id FROM journal WHERE source = 'crm.soak'")}
            entries, applied, intake = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM "
                "accrual_applied), (SELECT count(*) FROM intake)")
            # The intake sweeper deletes journaled rows on its own beat: wait for it too.
            done = set(ids) <= journaled and entries == applied and intake == 0
            if done or time.monotonic() > deadline:
                doubled_entries = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id "
                    "HAVING count(DISTINCT group_id) > 1) d")
                live = {r[0]: r[1] for r in await conn.fetch(
                    "SELECT partner_id, sum(amount) FROM balances GROUP BY partner_id")}
                dead = {r[0]: r[1] for r in await conn.fetch(
                    "SELECT split_part(reason, ':', 1), count(*) FROM dead_letters GROUP BY 1")}
                break
        finally:
            await conn.close()
        await asyncio.sleep(0.5)
    expected: Counter = Counter()
    for eid in journaled & set(ids):
        expected[tally.partner_of[eid]] += tally.accepted[eid]
    off = {p: (live.get(p, Decimal(0)), expected[p]) for p in PARTNERS
           if live.get(p, Decimal(0)) != expected[p]}
    over = [p for p, (a, b) in off.items() if a > b]
    lost = sorted(set(ids) - journaled)
    return {"lost": len(lost), "lost_ids": lost[:10], "doubled": doubled_entries + len(over),
            "short": len(off) - len(over),  # journaled, but not all applied
            "money_off": {p: f"live {a} expected {b}" for p, (a, b) in off.items()},
            "dead_letters": dead, "intake_left": intake, "unapplied": entries - applied}


async def run(duration: float = 60.0, kills: int = 6, rate: float = 60.0,
              seed: int = 14, root: Path | None = None, restart_broker: bool = True
              ) -> dict[str, Any]:
    """One soak; returns the counts it prints."""
    random.seed(seed)
    root = root or Path(tempfile.mkdtemp(prefix="trailpay-soak-"))
    stack = Stack(root)
    tally = Tally()
    settings = await stack.start()
    gateway = f"http://127.0.0.1:{stack.port}"
    stop, paused = asyncio.Event(), asyncio.Event()
    try:
        await _ready(f"{gateway}/readyz")
        for port in stack.ops.values():
            await _ready(f"http://127.0.0.1:{port}/readyz")
        async with httpx.AsyncClient(base_url=gateway, timeout=30.0, headers={
                "Authorization": f"Bearer {TOKEN}"}) as client:
            await _setup(client)
            http_numbers = iter(range(1_000_000, 10_000_000))
            kafka_numbers = iter(range(1, 1_000_000))
            started = time.monotonic()
            load = [asyncio.create_task(_http_load(client, tally, http_numbers, stop, rate / 2)),
                    asyncio.create_task(_kafka_load(settings, tally, kafka_numbers, stop,
                                                    paused, rate / 2)),
                    asyncio.create_task(_watch_stalls(stack, tally, stop))]
            await _chaos(stack, tally, duration, kills, paused, stop, restart_broker)
            stop.set()
            await asyncio.gather(*load)
            load_seconds = time.monotonic() - started
            unserved = await _unserved(settings, tally.acked)
            for eid in unserved:  # never reached trailpay: not accepted by it
                tally.accepted.pop(eid)
            counts = await _settled(settings, tally, timeout=max(60.0, duration / 2))
        checks = {}
        env = stack.env("cli")
        for name, args in (("rebuild --check", ["rebuild", "--check", "--workers", "1"]),
                           ("audit verify", ["audit", "verify"])):
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.cli",
                                                            *args], env=env,
                                           capture_output=True, text=True, timeout=300)
            checks[name] = "passed" if done.returncode == 0 else (
                f"FAILED: {(done.stdout + done.stderr)[-500:]}")
    finally:
        stop.set()
        await stack.stop()
    return {"seconds": round(load_seconds, 1), "kills": dict(tally.kills),
            "kills_total": sum(tally.kills.values()), "restarts": tally.restarts,
            "accepted": len(tally.accepted), **counts, "server_errors_5xx": tally.server_errors,
            "kafka_undrained_at_broker_restart": tally.undrained,
            "broker_unserved": len(unserved), "broker_unserved_ids": unserved[:10],
            "unavailable_503_retry_after": tally.unavailable,
            "http_status": {str(k): v for k, v in tally.http_status.items()},
            "poison_sent_kafka": tally.poison_sent, "max_stall_seconds": tally.max_stall,
            "checks": checks, "logs": str(root)}


def report(r: dict[str, Any]) -> str:
    dead = ", ".join(f"{k} {v}" for k, v in sorted(r["dead_letters"].items())) or "none"
    return "\n".join([
        f"soak: {r['seconds']} s of load, logs under {r['logs']}",
        f"  kills             {r['kills_total']} ({', '.join(f'{k} {v}' for k, v in sorted(r['kills'].items()))})",
        f"  restarts          {', '.join(r['restarts']) or 'none'}",
        f"  events accepted   {r['accepted']}",
        f"  lost              {r['lost']}{' ' + str(r['lost_ids']) if r['lost'] else ''}"
        + (f" ({r['kafka_undrained_at_broker_restart']} Kafka events still unjournaled when the "
           "memory broker was restarted: it forgets them)"
           if r.get("kafka_undrained_at_broker_restart") else ""),
        f"  broker lost       {r['broker_unserved']}"
        + (f" {r['broker_unserved_ids']} (acknowledged to the Kafka producer, never served by the "
           "broker to anyone: not counted as accepted)" if r["broker_unserved"] else ""),
        f"  doubled           {r['doubled']}",
        f"  balances off      {len(r['money_off'])} partners{' ' + str(r['money_off']) if r['money_off'] else ''}",
        f"  5xx               {r['server_errors_5xx']} (and {r['unavailable_503_retry_after']} "
        "503 with Retry-After while PostgreSQL restarted)",
        f"  dead letters      {dead} (poison sent over Kafka: {r['poison_sent_kafka']})",
        f"  max stall         {r['max_stall_seconds']:.1f} s",
        f"  HTTP answers      {r['http_status']}",
        f"  checks            {r['checks']}",
    ])
