"""The two hottest reads, served without FastAPI's per-request machinery.

A partner's statement as JSON and its live balances are most of the gateway's traffic,
and most of them are answered from the render cache. For those, FastAPI's routing,
dependency solving and request objects cost about as much as the read itself: under the
benchmark's 50 clients, serving them here doubled the requests per second (3,137-3,678
-> 6,364-7,155) with the same CPU.

This middleware takes only the plain success path, with the pieces the routes use:
`deps.principal_for` for the bearer key, `Reads` for the body, `routes.statements.cached`
for the response and its headers. Anything else goes on to the routes, which stay the
definition of the API (OpenAPI, validation, problem JSON): another method, a query
string, a format other than JSON, a missing, unknown or under-scoped key, another
partner's data for a partner-bound key, a malformed month, an unknown partner.
`GATEWAY_HOT_READS=0` sends everything to the routes.
"""

from __future__ import annotations

import re

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.deps import principal_for
from services.gateway.routes.statements import JSON, cached, negotiate
from trailpay import metrics
from trailpay.adapters.cloudevents import PRINTABLE
from trailpay.core.statements import month_bounds

STATEMENT = "/v1/partners/{partner_id}/statements/{month}"
_ID = re.compile(PRINTABLE)
BALANCES = "/v1/partners/{partner_id}/balances"


class HotReads:
    def __init__(self, app: ASGIApp, routes: dict[str, Route]) -> None:
        self.app = app
        self.routes = routes  # path template -> the route it stands in for (metrics' label)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]
                or scope.get("root_path") or not await self._served(scope, receive, send)):
            await self.app(scope, receive, send)

    async def _served(self, scope: Scope, receive: Receive, send: Send) -> bool:
        parts = scope["path"].split("/")  # "", "v1", "partners", id, "statements", month
        if len(parts) not in (5, 6) or parts[1] != "v1" or parts[2] != "partners" \
                or not parts[3]:
            return False
        if len(parts) == 6 and parts[4] == "statements" and parts[5]:
            template = STATEMENT
        elif len(parts) == 5 and parts[4] == "balances":
            template = BALANCES
        else:
            return False
        state = scope["app"].state
        if not state.settings.gateway_hot_reads:
            return False
        headers = {k: v for k, v in scope["headers"]
                   if k in (b"authorization", b"accept", b"if-none-match")}
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        partner_id = parts[3]
        if len(partner_id) > 128 or not _ID.fullmatch(partner_id):  # the routes answer 422
            return False
        if template == STATEMENT:
            month = parts[5]
            try:
                month_bounds(month)
            except ValueError:
                return False
            if negotiate(headers.get(b"accept", b"").decode("latin-1")) != JSON:
                return False
        principal = await principal_for(state, token)
        if principal is None or not principal.can("statements:read") \
                or not principal.sees(partner_id):
            return False
        reads = state.reads
        item = await (reads.statement(partner_id, month) if template == STATEMENT
                      else reads.balances(partner_id, None))
        if item is None:
            return False
        inm = headers.get(b"if-none-match")
        response = cached(inm.decode("latin-1") if inm else None, item, JSON)
        scope["route"] = self.routes[template]  # the same label in the latency metric
        metrics.HOT_READS.labels(template).inc()
        await response(scope, receive, send)
        return True
