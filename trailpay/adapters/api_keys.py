"""API keys: created once (the secret is shown once), stored only as a hash.

A token is `tp_<key_id>_<secret>`; lookup is by the hash of the whole token,
so a database dump never holds a usable key, and nothing logs the token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

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
    pg = await raw(conn)
    row = await pg.fetchrow(
        "SELECT key_id, name, scopes, partner_id FROM api_keys "
        "WHERE secret_hash = $1 AND revoked_at IS NULL", token_hash(token))
    return ApiKey(row[0], row[1], tuple(row[2]), row[3]) if row else None


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
