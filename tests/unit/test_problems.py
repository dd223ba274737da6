"""Every gateway error is RFC 9457 problem JSON naming the field when it is known."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import orjson
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from services.gateway.problems import AnswerFailures, install_problem_handlers, problem
from trailpay.adapters.cloudevents import EventRejected
from trailpay.core.money import MoneyError

PROBLEM = "application/problem+json"


class Body(BaseModel):
    type: str
    amount: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/events")
    async def events(status: int = 400) -> None:
        raise EventRejected('money must be a decimal string such as "1234.50"', "[2].data.acv",
                            status=status)

    @app.get("/plans/{plan_id}")
    async def plan(plan_id: str) -> None:
        raise HTTPException(422, f"body.plan_id: no published plan {plan_id!r}")

    @app.get("/secret")
    async def secret() -> None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.post("/validated")
    async def validated(body: Body, as_of: date) -> None:
        return None

    @app.get("/money")
    async def money() -> None:
        raise MoneyError("unknown currency 'XXX'")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @app.get("/plan-error")
    async def plan_error() -> None:
        from trailpay.core.plans import PlanError
        raise PlanError("rules[0].rate", "must be between 0 and 1")

    @app.get("/conflict")
    async def conflict() -> None:
        from trailpay.adapters.plan_store import VersionConflict
        raise VersionConflict("plan p version 2 was published with a different document")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # In-process ASGI (no sockets, no threads); app errors become the 500 a server sends.
    transport = httpx.ASGITransport(make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def assert_problem(r, status: int, field: str | None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    assert body["type"] and body["title"]
    assert body.get("field") == field
    if field is not None:
        assert body["errors"][0]["field"] == field
    return body


async def test_event_rejected_keeps_its_status_and_field(client):
    body = assert_problem(await client.post("/events"), 400, "[2].data.acv")
    assert body["type"].endswith("/invalid-event")
    assert "decimal string" in body["detail"]
    assert body["instance"] == "/events"
    assert_problem(await client.post("/events?status=415"), 415, "[2].data.acv")
    assert_problem(await client.post("/events?status=413"), 413, "[2].data.acv")


async def test_http_exception_detail_prefix_names_the_field(client):
    body = assert_problem(await client.get("/plans/x"), 422, "body.plan_id")
    assert body["errors"] == [{"field": "body.plan_id", "message": "no published plan 'x'"}]
    assert body["instance"] == "/plans/x"


async def test_http_exception_without_field_keeps_its_headers(client):
    r = await client.get("/secret")
    body = assert_problem(r, 401, None)
    assert r.headers["www-authenticate"] == "Bearer"
    assert body["detail"] == "missing bearer token" and "errors" not in body


async def test_unknown_route_is_a_problem_too(client):
    assert assert_problem(await client.get("/nowhere"), 404, None)["title"] == "Not Found"


async def test_request_validation_errors_use_dotted_paths(client):
    r = await client.post("/validated?as_of=yesterday", json={"amount": "1.00"})
    first = r.json()["errors"][0]["field"]
    body = assert_problem(r, 422, first)
    assert {e["field"] for e in body["errors"]} == {"body.type", "query.as_of"}
    assert body["type"].endswith("/validation-error")


async def test_money_error_is_422(client):
    body = assert_problem(await client.get("/money"), 422, None)
    assert "XXX" in body["detail"]


async def test_unexpected_error_is_a_500_problem_without_internals(client):
    body = assert_problem(await client.get("/boom"), 500, None)
    assert "hunter2" not in body["detail"]


async def test_plan_error_is_422_with_its_path(client):
    body = assert_problem(await client.get("/plan-error"), 422, "rules[0].rate")
    assert body["detail"] == "must be between 0 and 1"


async def test_version_conflict_is_409(client):
    assert_problem(await client.get("/conflict"), 409, None)


def test_problem_helper_shape():
    r = problem(409, "Conflict", "already there", field="id", instance="/v1/x",
                type_="version-conflict")
    assert r.media_type == PROBLEM and r.status_code == 409
    assert orjson.loads(r.body) == {
        "type": "https://trailpay.dev/problems/version-conflict", "title": "Conflict",
        "status": 409, "detail": "already there", "instance": "/v1/x", "field": "id",
        "errors": [{"field": "id", "message": "already there"}]}


async def test_a_failure_is_answered_inside_the_app_not_raised_to_the_server():
    # Starlette's last-resort handler answers and then raises again, and uvicorn drops a
    # keep-alive connection when it sees that (tests/integration/test_errors.py shows it).
    app = make_app()
    app.add_middleware(AnswerFailures)
    transport = httpx.ASGITransport(app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        body = assert_problem(await c.get("/boom"), 500, None)
    assert "hunter2" not in body["detail"]


def gateway_openapi() -> dict:
    from services.gateway.main import create_app
    from trailpay.settings import Settings
    return create_app(Settings(database_url="postgresql://nobody@nowhere/none")).openapi()


def test_the_openapi_documents_every_error_as_problem_json():
    schema = gateway_openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "Problem" in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            assert "default" in responses, where
            for status, r in responses.items():
                if status == "default" or int(status) >= 400:
                    assert list(r.get("content", {})) == [PROBLEM], (where, status)
                elif status.startswith("2"):
                    assert r.get("content"), (where, status)  # 201 beside 200 has a body
            if op.get("security"):
                assert {"401", "403"} <= set(responses), where
            if path.startswith("/v1/"):
                assert {"404", "422"} <= set(responses), where
            if method in ("post", "put"):
                assert "413" in responses and op["x-body-limit"] > 0, where


def test_the_openapi_publishes_each_routes_body_limit():
    paths = gateway_openapi()["paths"]
    assert paths["/v1/events"]["post"]["x-body-limit"] == 1024 * 1024
    assert paths["/v1/plans/{plan_id}/versions/{version}"]["put"]["x-body-limit"] == 256 * 1024
    assert paths["/v1/partners/{partner_id}"]["put"]["x-body-limit"] == 256 * 1024
    assert paths["/v1/disputes"]["post"]["x-body-limit"] == 64 * 1024
    assert set(paths["/v1/events"]["post"]["requestBody"]["content"]) == {
        "application/cloudevents+json", "application/cloudevents-batch+json",
        "application/json"}
