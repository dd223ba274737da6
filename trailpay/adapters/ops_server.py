"""/metrics, /healthz and /readyz for the consumer services (the gateway has its own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[dict[str, bool]]]
Detail = Callable[[], dict[str, Any] | None]


def ops_app(service: str, ready: Check, stall: Detail = lambda: None) -> FastAPI:
    """`ready` names each check and whether it passed; `stall` says, while the consumer is
    stuck on a batch or record, which one and for how long (shown under "stall")."""
    app = FastAPI(title=f"trailpay {service} ops", openapi_url=None)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        checks = await ready()
        ok = all(checks.values())
        response.status_code = 200 if ok else 503
        body: dict[str, object] = {"status": "ready" if ok else "not ready", "checks": checks}
        stuck = stall()
        if stuck is not None:
            body["stall"] = stuck
        return body

    return app


def ops_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server
