"""Gateway: the HTTP face of trailpay (FastAPI). Composition root only.

Writes are journal commands (or events produced to Kafka); reads come straight
from projections. Connections open in the lifespan, never at import.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import hot_reads, openapi
from services.gateway.deps import known_query
from services.gateway.limits import BodyLimits
from services.gateway.problems import AnswerFailures, install_problem_handlers, problem
from services.gateway.reads import Reads
from services.gateway.render import JSONBody
from services.gateway.routes import (
    disputes, events, partner_views, partners, payables, payout_runs, payouts, pilots, plans,
    programme, simulations, statements,
)
from trailpay import metrics
from trailpay.adapters import api_keys, intake, kafka
from trailpay.adapters.db import create_engine, ping
from trailpay.settings import Settings


class Observe:
    """Request latency per route and status (plain ASGI: Starlette's BaseHTTPMiddleware
    costs a task and a memory stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            metrics.HTTP_SECONDS.labels(scope["method"], getattr(route, "path", "unmatched"),
                                        str(status)).observe(time.perf_counter() - started)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = create_engine(settings)
        app.state.keys = api_keys.KeyCache(settings.api_key_cache_seconds)
        app.state.reads = await Reads.open(settings)
        await kafka.ensure_topics(settings)
        app.state.producer = kafka.producer(settings)
        await app.state.producer.start()
        app.state.jobs = set()  # simulations running in this process (routes/simulations.py)
        stopping = asyncio.Event()
        sweeper = asyncio.create_task(intake.sweep(app.state.engine, app.state.producer,
                                                   settings, stopping))
        try:
            yield
        finally:
            stopping.set()
            for job in list(app.state.jobs):
                job.cancel()
            await asyncio.gather(sweeper, *app.state.jobs, return_exceptions=True)
            await app.state.producer.stop()
            await app.state.reads.close()
            await app.state.engine.dispose()

    app = FastAPI(title="trailpay", version="0.1.0", lifespan=lifespan,
                  dependencies=[Depends(known_query)],
                  description="Event-sourced partner commissions: intake, plans, partners, "
                              "balances, statements, payout runs, payables, confirmations "
                              "and disputes.")
    install_problem_handlers(app)
    openapi.install(app)
    for module in (events, plans, partners, statements, payout_runs, payables, payouts,
                   disputes, simulations, pilots, partner_views, programme):
        app.include_router(module.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"], operation_id="healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @app.get("/readyz", tags=["ops"], operation_id="readyz",
             responses={503: {"description": "Not ready: the checks say which"}})
    async def readyz(request: Request) -> Response:
        checks = {"database": await ping(request.app.state.engine),
                  "broker": await kafka.ping(request.app.state.producer, settings.topic_events)}
        if all(checks.values()):
            return JSONBody({"status": "ready", "checks": checks})
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        return problem(503, None, f"not ready: {failing}", instance="/readyz",
                       extensions={"checks": checks})

    # The included routers' own routes: what FastAPI puts in scope["route"] on a match.
    hot = {r.path: r for module in (statements, partners) for r in module.router.routes
           if isinstance(r, APIRoute) and "GET" in r.methods
           and r.path in (hot_reads.STATEMENT, hot_reads.BALANCES)}
    if len(hot) != 2:  # the hot path parses these paths itself: they must still be routes
        raise RuntimeError(f"hot reads stand in for routes that are gone: {sorted(hot)}")
    # Outermost last: Observe times everything; AnswerFailures turns any failure inside
    # it (the hot reads' too) into a 500 problem that keeps the connection; BodyLimits
    # refuses an oversized body before a route reads it.
    app.add_middleware(BodyLimits, routes=app.routes)
    app.add_middleware(hot_reads.HotReads, routes=hot)
    app.add_middleware(AnswerFailures)
    app.add_middleware(Observe)
    return app


async def run(settings: Settings, stop: asyncio.Event) -> None:
    config = uvicorn.Config(create_app(settings), host=settings.gateway_host,
                            port=settings.gateway_port, log_level=settings.log_level.lower(),
                            access_log=False)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve()
    finally:
        watcher.cancel()
