"""API keys: created once (the secret is shown once), stored only as a hash.

A token is `tp_<key_id>_<secret>`; lookup is by the hash of the whole token,
so a database dump never holds a usable key, and nothing logs the token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.db import raw

SCOPES = ("events:write", "plans:write", "partners:write", "statements:read",
          "payables:read", "payouts:write", "admin")


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    partner_id: str | None
    revoked: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(conn: AsyncConnection, name: str, scopes: Sequence[str],
                 partner_id: str | None = None) -> tuple[ApiKey, str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {unknown}; choose from {', '.join(SCOPES)}")
    key_id = secrets.token_hex(6)
    token = f"tp_{key_id}_{secrets.token_urlsafe(24)}"
    pg = await raw(conn)
    await pg.execute(
        "INSERT INTO api_keys (key_id, name, secret_hash, scopes, partner_id) "
        "VALUES ($1, $2, $3, $4, $5)", key_id, name, token_hash(token), list(scopes), partner_id)
    return ApiKey(key_id, name, tuple(scopes), partner_id), token


async def lookup(conn: AsyncConnection, token: str) -> ApiKey | None:
    return await lookup_pg(await raw(conn), token)


async def lookup_pg(pg: Any, token: str) -> ApiKey | None:
    """`lookup` on an asyncpg connection or pool."""
    row = await pg.fetchrow(
        "SELECT key_id, name, scopes, partner_id FROM api_keys "
        "WHERE secret_hash = $1 AND revoked_at IS NULL", token_hash(token))
    return ApiKey(row[0], row[1], tuple(row[2]), row[3]) if row else None


class KeyCache:
    """Verified keys remembered in-process for `ttl` seconds, by the hash of the token.

    Only keys found valid are remembered (an unknown or revoked token is looked up every
    time), so a new key works at once; a revoked key stops working at most `ttl` seconds
    after the revocation commits (revocation happens in another process, the CLI, so this
    bound is the only promise). ttl <= 0 turns the cache off. At most `size` keys are kept;
    when full, the expired ones are dropped, and if none had expired, all of them.
    """

    def __init__(self, ttl: float, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    async def get(self, token: str,
                  load: Callable[[str], Awaitable[ApiKey | None]]) -> ApiKey | None:
        """The key for `token`: from the cache while fresh, else `load(token)`."""
        if self.ttl <= 0:
            return await load(token)
        digest = token_hash(token)
        now = self.clock()
        hit = self._keys.get(digest)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._keys[digest]
        key = await load(token)
        if key is not None:
            if len(self._keys) >= self.size:
                self._keys = {d: v for d, v in self._keys.items() if v[0] > now}
                if len(self._keys) >= self.size:
                    self._keys.clear()
            self._keys[digest] = (now + self.ttl, key)
        return key

    def clear(self) -> None:
        self._keys.clear()


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    pg = await raw(conn)
    rows = await pg.fetch("SELECT key_id, name, scopes, partner_id, revoked_at IS NOT NULL "
                          "FROM api_keys ORDER BY created_at")
    return [ApiKey(r[0], r[1], tuple(r[2]), r[3], r[4]) for r in rows]


async def revoke(conn: AsyncConnection, key_id: str) -> bool:
    pg = await raw(conn)
    done = await pg.execute("UPDATE api_keys SET revoked_at = now() "
                            "WHERE key_id = $1 AND revoked_at IS NULL", key_id)
    return done.endswith("1")
