"""The hot reads (statements, balances, payables) on a plain asyncpg pool (db.create_read_pool).

No SQLAlchemy connection, pre-ping or transaction on the path that answers from the
cache: one shared version query (read_cache.VersionBatcher) and the cached bytes. A
miss reads the version and the content in one SQL statement (read_models' snapshots),
so what is stored under a version is exactly what that version was, in one round trip.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, date, datetime
from typing import Any

import orjson

from services.gateway.read_cache import Rendered, RenderCache, Version, VersionBatcher
from services.gateway.render import balances_json, statement_json
from services.gateway.statement_formats import statement_csv
from trailpay.adapters import read_models
from trailpay.adapters.db import Pool, create_read_pool
from trailpay.settings import Settings


class Reads:
    def __init__(self, pool: Pool, cache_bytes: int) -> None:
        self.pool = pool
        self.cache = RenderCache(cache_bytes)
        self.versions = VersionBatcher(self._versions)

    @classmethod
    async def open(cls, settings: Settings) -> Reads:
        return cls(await create_read_pool(settings), int(settings.read_cache_mib * 1024 * 1024))

    async def close(self) -> None:
        await self.pool.close()

    async def _versions(self, partner_ids: list[str]) -> dict[str, Version]:
        return await read_models.partner_versions(self.pool, partner_ids)

    async def _render(self, key: Hashable, partner_id: str, snapshot) -> Rendered | None:
        """The cached body at the partner's current version, or snapshot(pool) -> (version,
        body): one statement, one round trip. None: no such partner."""
        if key in self.cache:
            version = await self.versions.get(partner_id)
            if version is None:
                return None
            hit = self.cache.get(key, version)
            if hit is not None:
                return hit
        # Not cached (no version query then: the snapshot reads the version with the
        # page), or cached at an older version.
        built = await snapshot(self.pool)
        if built is None:
            return None
        return self.cache.put(key, *built)

    async def statement(self, partner_id: str, month: str) -> Rendered | None:
        """The statement as JSON bytes (month already validated)."""
        async def snapshot(pg: Any) -> tuple[Version, bytes] | None:
            snap = await read_models.statement_snapshot(pg, partner_id, month)
            if snap is None:
                return None
            return snap.version, orjson.dumps(
                statement_json(snap.statement, snap.payouts, snap.disputes))
        return await self._render(("statement", partner_id, month), partner_id, snapshot)

    async def statement_csv(self, partner_id: str, month: str) -> Rendered | None:
        key = ("statement.csv", partner_id, month)
        doc = await self.statement(partner_id, month)
        if doc is None:
            return None
        hit = self.cache.get(key, doc.version)
        if hit is not None:
            return hit
        return self.cache.put(key, doc.version,
                              statement_csv(orjson.loads(doc.body)).encode())

    async def balances(self, partner_id: str, as_of: date | None) -> Rendered | None:
        today = datetime.now(UTC).date()  # pending money turns payable by date: part of the key

        async def snapshot(pg: Any) -> tuple[Version, bytes] | None:
            snap = await read_models.balances_snapshot(pg, partner_id, as_of, today)
            if snap is None:
                return None
            return snap.version, orjson.dumps(
                balances_json(partner_id, as_of or today, snap.balances))
        return await self._render(("balances", partner_id, as_of, today), partner_id, snapshot)

    async def payables(self, after: tuple[int, str] | None, limit: int,
                       partner_id: str | None, currency: str | None
                       ) -> list[read_models.PayoutView]:
        return await read_models.payables_pg(self.pool, after, limit, partner_id, currency)
