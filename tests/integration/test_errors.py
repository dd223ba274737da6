"""Errors over real HTTP (issue 14): a handler's failure is a 500 problem that keeps the
keep-alive connection; 405 names every method of the path in Allow; bodies are bounded
per route (413); a hostile YAML plan is a quick 422; NaN and friends in `payment` are
refused by name; /readyz's 503 is a problem too."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import setup_programme, uid
from tests.kit import billion_laughs
from trailpay.adapters import read_models

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    return body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on an open connection: (status, headers, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n"
                 f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])
               if k}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(head[0].split()[1]), headers, body


async def test_a_handler_failure_answers_a_500_problem_and_keeps_the_connection(
        stack, monkeypatch):
    async def broken(conn, payout_id):
        raise RuntimeError("the database said something it should not repeat: hunter2")
    monkeypatch.setattr(read_models, "payout", broken)
    url = urlsplit(stack)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        status, headers, body = await exchange(reader, writer, "/v1/payouts/po-1")
        assert status == 500 and headers["content-type"].startswith(PROBLEM)
        assert b"hunter2" not in body and headers.get("connection") != "close"
        # The same connection answers the next request (before, uvicorn had closed it).
        status, _, _ = await asyncio.wait_for(exchange(reader, writer, "/healthz"), 10)
        assert status == 200
    finally:
        writer.close()


async def test_a_405_names_every_method_of_the_path(client):
    for method, path, allow in (("DELETE", "/v1/partners/P-x", "GET, PUT"),
                                ("PATCH", "/v1/disputes", "GET, POST"),
                                ("GET", "/v1/events", "POST")):
        r = await client.request(method, path)
        assert_problem(r, 405)
        assert r.headers["allow"] == allow, (method, path, r.headers.get("allow"))


async def test_bodies_are_bounded_per_route(client):
    mib, kib = 1024 * 1024, 1024
    r = await client.post("/v1/events", content=b" " * (mib + 1),
                          headers={"Content-Type": "application/cloudevents-batch+json"})
    assert "1 MiB" in assert_problem(r, 413, "(body)")["detail"]
    r = await client.put("/v1/plans/p/versions/1", content=b"#" * (256 * kib + 1),
                         headers={"Content-Type": "application/yaml"})
    assert "256 KiB" in assert_problem(r, 413)["detail"]

    async def chunks(n: int, size: int = 16 * kib):  # no Content-Length: chunked
        for _ in range(n):
            yield b" " * size
    r = await client.put("/v1/partners/P-x", content=chunks(17),
                         headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "(body)")
    r = await client.post("/v1/disputes", content=b" " * (64 * kib + 1),
                          headers={"Content-Type": "application/json"})
    assert "64 KiB" in assert_problem(r, 413)["detail"]
    # Under the limit, the route reads the body as before.
    plan_id, _ = await setup_programme(client, 0)
    p = uid("P")
    r = await client.put(f"/v1/partners/{p}", json={
        "type": "reseller", "plan_id": plan_id, "payment": {"note": "x" * (200 * kib)}})
    assert r.status_code == 201, r.text


async def test_a_hostile_yaml_plan_is_a_quick_422(client):
    for doc, says in (("a: " + "[" * 10_000 + "]" * 10_000 + "\n", "deeper than"),
                      (billion_laughs(9), "expands to more than")):
        started = time.perf_counter()
        r = await client.put(f"/v1/plans/{uid('plan')}/versions/1", content=doc.encode(),
                             headers={"Content-Type": "application/yaml"})
        assert time.perf_counter() - started < 2.0
        assert says in assert_problem(r, 422, "(document)")["detail"]


@pytest.mark.parametrize(("payment", "field"), [
    ('{"weight": NaN}', "body.payment.weight"),
    ('{"weight": Infinity}', "body.payment.weight"),
    ('{"a": {"b": [1, -Infinity]}}', "body.payment.a.b[1]"),
    ('{"weight": 1e400}', "body.payment.weight"),
    ('{"account": 1' + "0" * 400 + "}", "body.payment.account"),
    ('{"deep": ' + "[" * 300 + "]" * 300 + "}", None),
])
async def test_non_json_numbers_in_payment_are_refused_by_name(client, payment, field):
    plan_id, (p,) = await setup_programme(client, 1)
    before = (await client.get(f"/v1/partners/{p}")).json()
    r = await client.put(f"/v1/partners/{p}", content=(
        f'{{"type": "reseller", "plan_id": "{plan_id}", "payment": {payment}}}').encode(),
        headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422)
    if field is not None:
        assert body["field"] == field, body
    else:
        assert body["field"].startswith("body.payment.deep[0]"), body
    assert (await client.get(f"/v1/partners/{p}")).json() == before


async def test_readyz_not_ready_is_a_problem_naming_the_check(client, monkeypatch):
    from services.gateway import main

    async def down(engine):
        return False
    monkeypatch.setattr(main, "ping", down)
    r = await client.get("/readyz")
    body = assert_problem(r, 503)
    assert body["checks"] == {"database": False, "broker": True}
    assert "database" in body["detail"]


@pytest.mark.parametrize("path", [
    "/v1/partners/P%00x", "/v1/partners/P%00x/balances", "/v1/partners/P%00x/statements/2026-01",
    "/v1/plans/p%00x", "/v1/payouts/po%00x", "/v1/disputes/d%00x", "/v1/payout-runs/r%00x",
    "/v1/payables?partner_id=P%00x", "/v1/disputes?partner_id=P%00x",
    "/v1/partners/" + "P" * 10_000,
])
async def test_a_control_character_or_an_oversized_id_is_a_422_not_a_500(client, path):
    body = assert_problem(await client.get(path), 422)
    assert body["field"].startswith(("path.", "query.")), body


async def test_ids_in_bodies_are_printable_and_bounded(client):
    plan_id, _ = await setup_programme(client, 0)
    long_id = "P" * 10_000
    r = await client.put(f"/v1/partners/{long_id}", json={"type": "reseller", "plan_id": plan_id})
    assert_problem(r, 422, "path.partner_id")
    assert_problem(await client.get(f"/v1/partners/{long_id[:128]}"), 404)
    r = await client.put(f"/v1/partners/{uid('P')}", json={"type": "re\u0000seller",
                                                          "plan_id": plan_id})
    assert "printable" in assert_problem(r, 422, "body.type")["detail"]
    r = await client.post("/v1/disputes", json={"partner_id": "P", "posting_id": "g\u0000",
                                                "reason": "r"})
    assert_problem(r, 422, "body.posting_id")
