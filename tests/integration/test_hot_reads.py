"""The gateway's hot reads answer exactly as the routes do, and leave every other case to
them. A query string the routes ignore sends the same request through the routes, so the
two paths can be compared on one running gateway."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY

from services.gateway.hot_reads import BALANCES, STATEMENT, HotReads
from tests.integration.helpers import cloud_event, deal, eventually, post_events, setup_programme, uid
from trailpay.adapters import api_keys
from trailpay.adapters.db import raw

pytestmark = pytest.mark.integration

COMPARED = ("content-type", "content-length", "etag", "vary", "cache-control")


def hot_count(route: str) -> float:
    return REGISTRY.get_sample_value("trailpay_gateway_hot_reads_total", {"route": route}) or 0.0


def timed(route: str, status: str = "200") -> float:
    """Requests the latency histogram counted under this route label."""
    return REGISTRY.get_sample_value("trailpay_http_request_duration_seconds_count",
                                     {"method": "GET", "route": route, "status": status}) or 0.0


async def _applied(engine, partner_id: str) -> int:
    async with engine.connect() as conn:
        return await (await raw(conn)).fetchval(
            "SELECT count(*) FROM postings WHERE partner_id = $1", partner_id)


async def _via_routes(client, monkeypatch, path: str, **kwargs) -> httpx.Response:
    """The same request through the routes: the hot path declines it (an unknown query
    parameter, the old way round, is now a 422)."""
    async def declined(self, scope, receive, send) -> bool:
        return False

    with monkeypatch.context() as m:
        m.setattr(HotReads, "_served", declined)
        return await client.get(path, **kwargs)


async def test_hot_reads_answer_as_the_routes_do(client, engine, stack, monkeypatch):
    _, (p, other) = await setup_programme(client, 2)
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p, "1")], "24000.00"),
                                           time_="2026-02-03T10:00:00Z")])
    await eventually(lambda: _applied(engine, p))
    async with engine.begin() as conn:
        _, bound = await api_keys.create(conn, uid("key"), ["statements:read"], p)

    for route, path in ((STATEMENT, f"/v1/partners/{p}/statements/2026-02"),
                        (BALANCES, f"/v1/partners/{p}/balances")):
        before, before_timed = hot_count(route), timed(route)
        hot = await client.get(path)
        assert hot_count(route) == before + 1  # this one took the hot path
        assert timed(route) == before_timed + 1  # timed under its route, as the routes are
        routed = await _via_routes(client, monkeypatch, path)
        assert hot_count(route) == before + 1  # and this one the routes
        assert hot.status_code == routed.status_code == 200
        assert hot.content == routed.content and b'"partner_id"' in hot.content
        assert [hot.headers.get(h) for h in COMPARED] == [routed.headers.get(h) for h in COMPARED]
        # Revalidation: 304 with the same headers either way.
        inm = {"If-None-Match": hot.headers["etag"]}
        hot304 = await client.get(path, headers=inm)
        routed304 = await _via_routes(client, monkeypatch, path, headers=inm)
        assert hot304.status_code == routed304.status_code == 304
        assert hot304.content == routed304.content == b""
        assert [hot304.headers.get(h) for h in COMPARED] == \
               [routed304.headers.get(h) for h in COMPARED]
        assert hot_count(route) == before + 2

    # A partner-bound key on its own partner is served hot, on another partner it is not.
    async with httpx.AsyncClient(base_url=stack, timeout=30,
                                 headers={"Authorization": f"Bearer {bound}"}) as own:
        before = hot_count(BALANCES)
        assert (await own.get(f"/v1/partners/{p}/balances")).status_code == 200
        assert hot_count(BALANCES) == before + 1
        refused = await own.get(f"/v1/partners/{other}/balances")
        assert refused.status_code == 404 and hot_count(BALANCES) == before + 1

    # Everything else is the routes' own answer: problems, other formats, 404s.
    before = hot_count(STATEMENT)
    async with httpx.AsyncClient(base_url=stack, timeout=30) as anonymous:
        r = await anonymous.get(f"/v1/partners/{p}/statements/2026-02")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    r = await client.get(f"/v1/partners/{p}/statements/2026-13")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = await client.get(f"/v1/partners/{p}/statements/2026-02", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    r = await client.get(f"/v1/partners/{uid('P')}/statements/2026-02")
    assert r.status_code == 404
    assert hot_count(STATEMENT) == before
