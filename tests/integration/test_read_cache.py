"""The gateway's read cache never serves a stale statement or balance, revalidates with
ETags, and a revoked API key stops working within the configured TTL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from services.gateway.render import statement_json
from tests.integration.helpers import cloud_event, deal, eventually, post_events, setup_programme, uid
from trailpay.adapters import api_keys, read_models
from trailpay.adapters.db import raw
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration


async def applied(engine, partner_id: str) -> int:
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetchval("SELECT count(*) FROM postings WHERE partner_id = $1",
                                 partner_id)


async def test_a_new_posting_shows_in_the_very_next_read(client, engine):
    _, (p,) = await setup_programme(client, 1)
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p, "1")], "10000.00"),
                                           time_="2026-02-03T10:00:00Z")])
    await eventually(lambda: applied(engine, p))
    path = f"/v1/partners/{p}/statements/2026-02"
    first = await client.get(path)
    assert first.status_code == 200 and len(first.json()["lines"]) == 1
    etag = first.headers["etag"]
    again = await client.get(path)  # from the cache: the same bytes
    assert again.content == first.content and again.headers["etag"] == etag
    not_modified = await client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    before = (await client.get(f"/v1/partners/{p}/balances")).json()

    n = await applied(engine, p)
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p, "1")], "5000.00"),
                                           time_="2026-02-10T10:00:00Z")])

    async def more() -> bool:
        return await applied(engine, p) > n
    await eventually(more)
    # The accrual has committed: the next read (no polling) must show it.
    after = await client.get(path, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert len(after.json()["lines"]) == 2
    balances = (await client.get(f"/v1/partners/{p}/balances")).json()
    assert balances["balances"][0]["payable"] == "3000.00"  # 20% of 10,000 + 20% of 5,000
    assert before["balances"][0]["payable"] == "2000.00"
    csv_ = await client.get(path, headers={"Accept": "text/csv"})
    assert csv_.status_code == 200 and csv_.text.count("\r\nline,") == 2

    # What the cache serves is what the uncached read model builds.
    async with engine.connect() as conn:
        snap = await read_models.statement_snapshot(await raw(conn), p, "2026-02")
        versions = await read_models.partner_versions(await raw(conn), [p])
    assert snap is not None and snap.version == versions[p]
    assert after.json() == orjson.loads(orjson.dumps(
        statement_json(snap.statement, snap.payouts, snap.disputes)))


async def test_unknown_partner_and_bad_month_still_answer_404_and_422(client):
    assert (await client.get(f"/v1/partners/{uid('P')}/statements/2026-02")).status_code == 404
    assert (await client.get(f"/v1/partners/{uid('P')}/balances")).status_code == 404
    _, (p,) = await setup_programme(client, 1)
    assert (await client.get(f"/v1/partners/{p}/statements/2026-13")).status_code == 422
    r = await client.get(f"/v1/partners/{p}/balances")
    assert r.status_code == 200 and r.json()["balances"] == []


@contextlib.asynccontextmanager
async def own_gateway(settings, key_ttl: float) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway on the session's database, with its own API-key cache TTL."""
    from services.gateway.main import run as run_gateway

    own = settings.model_copy(update={"gateway_port": free_port(),
                                      "api_key_cache_seconds": key_ttl})
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(own, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{own.gateway_port}",
                                     timeout=10) as c:
            await eventually(lambda: _ready(c))
            yield c
    finally:
        stop.set()
        await task


async def _ready(c: httpx.AsyncClient) -> bool:
    try:
        return (await c.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _key(engine) -> tuple[str, dict[str, str]]:
    async with engine.begin() as conn:
        created, token = await api_keys.create(conn, uid("key"), ["statements:read"])
    return created.key_id, {"Authorization": f"Bearer {token}"}


async def _revoke(engine, key_id: str) -> None:
    async with engine.begin() as conn:
        assert await api_keys.revoke(conn, key_id)


async def test_a_revoked_key_stops_working_within_the_ttl(settings, engine):
    ttl = 1.0
    async with own_gateway(settings, ttl) as c:
        key_id, auth = await _key(engine)
        assert (await c.get("/v1/disputes", headers=auth)).status_code == 200
        await _revoke(engine, key_id)
        revoked_at = time.monotonic()

        async def refused() -> bool:
            return (await c.get("/v1/disputes", headers=auth)).status_code == 401
        await eventually(refused, timeout=ttl + 2, interval=0.05)
        assert time.monotonic() - revoked_at <= ttl + 0.5


async def test_with_ttl_zero_a_revocation_applies_to_the_next_request(settings, engine):
    async with own_gateway(settings, 0) as c:
        key_id, auth = await _key(engine)
        assert (await c.get("/v1/disputes", headers=auth)).status_code == 200
        await _revoke(engine, key_id)
        assert (await c.get("/v1/disputes", headers=auth)).status_code == 401
