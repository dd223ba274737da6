"""Alembic environment: runs migrations over asyncpg, URL from Settings."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from trailpay.adapters.tables import metadata
from trailpay.settings import Settings

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url")
    return url or Settings().async_database_url


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
