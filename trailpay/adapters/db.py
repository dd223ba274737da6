"""Database engine and migrations: the one way trailpay talks to PostgreSQL.

SQLAlchemy's AsyncEngine over asyncpg everywhere; hot batch paths take the
underlying asyncpg connection (`raw`) for COPY and array parameters. The gateway's hot
reads use a plain asyncpg pool (`create_read_pool`). Services hold these as `Engine`,
`Connection` and `Pool` and hand them to the adapters; they import no driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from trailpay.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


# The services' sessions: short statements and batches on a small box. A parallel plan
# (or JIT) costs more to start than these queries take, and its workers take the CPU the
# other services need; the rebuild and ad-hoc reporting use their own sessions.
SERVICE_SESSION = {"max_parallel_workers_per_gather": "0", "jit": "off"}

Engine = AsyncEngine
Connection = AsyncConnection
Pool = asyncpg.Pool


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": SERVICE_SESSION},
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's RESET ALL round trip: these reads set no session
    state, and an unfinished transaction is still rolled back by the pool itself."""


async def create_read_pool(settings: Settings) -> Pool:
    """The gateway's plain asyncpg pool for its hot reads: no SQLAlchemy connection,
    pre-ping or transaction on the path that answers from its cache."""
    return await asyncpg.create_pool(
        settings.asyncpg_dsn, min_size=1, max_size=settings.db_pool_size,
        server_settings=SERVICE_SESSION, reset=_keep_session)


@asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[Any]:
    """One plain asyncpg connection to `dsn` (asyncpg's form: `Settings.asyncpg_dsn`),
    closed on leaving."""
    pg = await asyncpg.connect(dsn)
    try:
        yield pg
    finally:
        await pg.close()


async def raw(conn: AsyncConnection) -> Any:
    """The asyncpg connection under a SQLAlchemy connection (for COPY, arrays).

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, on its own first statement;
    work done straight on the driver before that would run in autocommit and
    escape the caller's transaction. So inside `engine.begin()` we make sure
    BEGIN has been sent before handing the driver connection out.
    """
    fairy = await conn.get_raw_connection()
    driver = fairy.driver_connection
    if conn.in_transaction() and not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")
    return driver


def alembic_config(async_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = async_url
    return cfg


def migrate_sync(settings: Settings) -> None:
    """Upgrade the schema to head (called outside any running event loop)."""
    command.upgrade(alembic_config(settings.async_database_url), "head")


async def migrate(settings: Settings) -> None:
    await asyncio.to_thread(migrate_sync, settings)


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - readiness reports, never raises
        return False


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database (keeps ?host=/socket queries)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    """CREATE DATABASE for the URL's database if it does not exist yet."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin_url = with_database(url, "postgres").replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", u.database):
            await conn.execute(f'CREATE DATABASE "{u.database}"')
    finally:
        await conn.close()
