"""Request bodies bounded per route: 413 problem JSON before a route reads too much.

A route declares its limit with `openapi_extra=body_limit(n)`, which also publishes
it in the OpenAPI as `x-body-limit`; a route that declares none gets DEFAULT. A
Content-Length over the limit is refused without reading anything; a chunked body
is read up to the limit and refused as soon as it passes it. A body within the limit
is handed to the route as read, so the route reads it once, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.problems import problem

KiB, MiB = 1024, 1024 * 1024
DEFAULT = 64 * KiB
EXTENSION = "x-body-limit"
_BODIES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_limit(n: int, **openapi_extra: Any) -> dict[str, Any]:
    """A route's `openapi_extra` declaring that its body holds at most `n` bytes."""
    return {EXTENSION: n, **openapi_extra}


def declared(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], frozenset[str], int]]:
    """(path regex, methods, limit) of every route that declares a limit."""
    out = []
    for route in iter_route_contexts(list(routes)):
        limit = (getattr(route, "openapi_extra", None) or {}).get(EXTENSION)
        if limit is not None:
            out.append((route.path_regex, frozenset(route.methods or ()), int(limit)))
    return out


def words(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB" if n % KiB == 0 else f"{n} B"


class BodyLimits:
    def __init__(self, app: ASGIApp, routes: Iterable[Any], default: int = DEFAULT) -> None:
        self.app = app
        self.limits = declared(routes)
        self.default = default

    def limit(self, method: str, path: str) -> int:
        for regex, methods, n in self.limits:
            if method in methods and regex.match(path):
                return n
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODIES:
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["method"], scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await self.refuse(limit, scope, receive, send)
                    return
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self.refuse(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(413, "Content Too Large", f"the request body is larger than this route's limit of "
                      f"{words(limit)} ({limit} bytes)", "(body)", instance=scope["path"],
                      type_="body-too-large")(scope, receive, send)
