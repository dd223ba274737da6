"""Small helpers for integration tests: unique ids, polling, a plan and partners."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

SIMPLE_PLAN = """
plan_id: {plan_id}
version: 1
effective_from: "2025-01-01"
currency: USD
partner_types: [reseller, integrator]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "0.20", cap: "12000.00"}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


def uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0,
                     interval: float = 0.1) -> Any:
    """Poll until check() returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def drain(broker: str, topic: str, n: int, settle: bool = False) -> list:
    """The topic's records from the start, polled until there are `n`; with `settle`,
    until a poll brings nothing more too, so that an extra (a duplicate) would be seen."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got: list = []
    try:
        for _ in range(100):
            polled = await consumer.getmany(timeout_ms=200)
            batch = [r for rs in polled.values() for r in rs]
            got += batch
            if len(got) >= n and not (settle and batch):
                break
    finally:
        await consumer.stop()
    return got


def cloud_event(type_: str, data: dict, *, id_: str | None = None, source: str = "crm.test",
                time_: str = "2026-02-01T10:00:00Z") -> dict:
    return {"specversion": "1.0", "id": id_ or uid("evt"), "source": source, "type": type_,
            "time": time_, "datacontenttype": "application/json", "data": data}


def deal(customer_id: str, partners: list[tuple[str, str]], acv: str = "100000.00",
         start: str = "2026-02-01") -> dict:
    return {"deal_id": uid("D"), "customer_id": customer_id, "kind": "new", "currency": "USD",
            "acv": acv, "tcv": acv, "term_months": 12, "start_date": start,
            "partners": [{"partner_id": p, "role": "sourced", "share": s} for p, s in partners]}


async def setup_programme(client, n_partners: int = 2) -> tuple[str, list[str]]:
    plan_id = uid("plan")
    r = await client.put(f"/v1/plans/{plan_id}/versions/1",
                         content=SIMPLE_PLAN.format(plan_id=plan_id).encode(),
                         headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    partners = [uid("P") for _ in range(n_partners)]
    for p in partners:
        r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": plan_id})
        assert r.status_code == 201, r.text
    return plan_id, partners


async def post_events(client, events: list[dict]) -> None:
    r = await client.post("/v1/events", json=events,
                          headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 202, r.text


async def balances(client, partner_id: str) -> dict[str, str]:
    r = await client.get(f"/v1/partners/{partner_id}/balances")
    assert r.status_code == 200, r.text
    body = r.json()
    return body["balances"][0] if body["balances"] else {}


def service_process(service: str, settings, batch_max: int = 20, *, port: int | None = None,
                    extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """`trailpay <service>` (ledger, accrual or gateway) in a process of its own, on these
    settings' database, broker, topics and groups, so that a test can SIGKILL it (or read
    its own /metrics). `port`: where it listens (METRICS_PORT, or GATEWAY_PORT)."""
    from trailpay.adapters.embedded import free_port

    port = port or free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "TOPIC_EVENTS": settings.topic_events, "TOPIC_LEDGER": settings.topic_ledger,
           "TOPIC_PARTITIONS": str(settings.topic_partitions),
           "GROUP_LEDGER": settings.group_ledger, "GROUP_ACCRUAL": settings.group_accrual,
           "METRICS_PORT": str(port), "GATEWAY_PORT": str(port),
           "TRAILPAY_ADMIN_TOKEN": settings.trailpay_admin_token,
           "CONSUMER_BATCH_MAX": str(batch_max), "LOG_LEVEL": "WARNING", **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "services.cli", service], env=env)
