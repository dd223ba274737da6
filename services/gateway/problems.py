"""RFC 9457 problem details: every error the gateway answers, in one shape.

Integrators get `application/problem+json` with a stable `type`, the HTTP
`status`, a `detail` meant for humans, the request path as `instance` and,
when the culprit is known, `field` (a dotted path such as "data.acv" or
"body.plan_id") plus `errors`: [{field, message}]. The core's small exception
tree (EventRejected, PlanError, VersionConflict, MoneyError, FactError) maps
here and nowhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.render import JSONBody
from trailpay.adapters.cloudevents import FREE_TEXT, PRINTABLE, EventRejected
from trailpay.adapters.outage import outage
from trailpay.core.facts import FactError
from trailpay.core.money import MoneyError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://trailpay.dev/problems/"

log = logging.getLogger(__name__)

# "body.plan_id: no published plan 'x'" -> field "body.plan_id"
_FIELD_PREFIX = re.compile(r"^(\S+): (.+)$", re.DOTALL)


class ProblemResponse(JSONBody):
    media_type = MEDIA_TYPE


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(status: int, title: str | None = None, detail: str | None = None,
            field: str | None = None, errors: Sequence[Mapping[str, str | None]] | None = None,
            instance: str | None = None, type_: str = "about:blank",
            headers: Mapping[str, str] | None = None,
            extensions: Mapping[str, Any] | None = None) -> ProblemResponse:
    """A problem+json response; `type_` is a slug under TYPE_BASE, a URI, or about:blank;
    `extensions` are further members of the body (RFC 9457 §3.2)."""
    if type_ != "about:blank" and ":" not in type_:
        type_ = TYPE_BASE + type_
    body: dict[str, Any] = {"type": type_, "title": title or _title(status), "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if field is not None:
        body["field"] = field
    if errors is None and field is not None:
        errors = [{"field": field, "message": detail or ""}]
    if errors:
        body["errors"] = [dict(e) for e in errors]
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    return ProblemResponse(body, status_code=status, headers=dict(headers) if headers else None)


def field_path(loc: Iterable[str | int]) -> str:
    """A pydantic/FastAPI error location as a dotted path: ("body", "items", 0) -> body.items[0]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def split_field(detail: str) -> tuple[str | None, str]:
    """'body.plan_id: no such plan' -> ('body.plan_id', 'no such plan'); else (None, detail)."""
    m = _FIELD_PREFIX.match(detail)
    return (m.group(1), m.group(2)) if m else (None, detail)


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route serves at `path` (Starlette's 405 names only the first
    route that matched the path, so GET /v1/partners/x's 405 would have said PUT only)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(path):
            methods |= route.methods
    return sorted(methods)


class AnswerFailures:
    """A handler's failure answers 500 problem JSON and keeps the connection.

    Starlette's ServerErrorMiddleware answers with the app's Exception handler and then
    raises the exception again, for servers to log; uvicorn, seeing it after the
    response, closes the connection, so every client of a keep-alive pool paid for one
    failed request with a broken connection. This answers and logs, and raises nothing
    unless the response had already started (then nothing better can be sent).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await failure(scope.get("app"), scope["method"], scope["path"], exc)(
                scope, receive, send)


def failure(app: Any, method: str, path: str, exc: Exception) -> ProblemResponse:
    """The answer to an unhandled failure: 503 with Retry-After while the database or the
    broker is away (nothing was half-done: try again), else a 500, logged."""
    away = outage(exc)
    if away is not None:
        settings = getattr(getattr(app, "state", None), "settings", None)
        retry = str(getattr(settings, "retry_after_seconds", 5))
        log.warning("%s %s: the %s is unavailable: %s: %s", method, path, away,
                    type(exc).__name__, exc)
        return problem(503, None, f"the {away} is unavailable; nothing was changed, retry "
                                  f"in {retry} s", instance=path, type_="unavailable",
                       headers={"Retry-After": retry})
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem(500, None, "internal error; it has been logged", instance=path)


PATTERN_SAYS = {PRINTABLE: "must be printable: no control characters",
                FREE_TEXT: "must hold no control characters other than tab and line breaks"}


def _message(error: Mapping[str, Any]) -> str:
    """A validation error's message; the shared id and text patterns in words."""
    pattern = (error.get("ctx") or {}).get("pattern")
    if error.get("type") == "string_pattern_mismatch" and pattern in PATTERN_SAYS:
        return PATTERN_SAYS[pattern]
    if error.get("type") == "extra_forbidden":
        return "is not an allowed field of this body"
    return str(error.get("msg", "")).removeprefix("Value error, ")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error raised in `app` as application/problem+json."""

    async def event_rejected(request: Request, exc: EventRejected) -> Response:
        type_ = {413: "batch-too-large", 415: "unsupported-media-type"}.get(exc.status,
                                                                            "invalid-event")
        return problem(exc.status, "Invalid event" if exc.status == 400 else None, exc.reason,
                       exc.field, instance=request.url.path, type_=type_)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else orjson.dumps(exc.detail).decode()
        field, message = split_field(detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return problem(exc.status_code, None, detail, field,
                       [{"field": field, "message": message}] if field else None,
                       instance=request.url.path, headers=headers or None)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": field_path(e.get("loc", ())), "message": _message(e)}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem(422, "Invalid request", detail, first["field"], errors,
                       instance=request.url.path, type_="validation-error")

    async def fact_error(request: Request, exc: FactError) -> Response:
        return problem(422, "Invalid fact", exc.message, exc.field, instance=request.url.path,
                       type_="invalid-fact")

    async def money_error(request: Request, exc: MoneyError) -> Response:
        return problem(422, "Invalid money", str(exc), instance=request.url.path,
                       type_="invalid-money")

    async def unexpected(request: Request, exc: Exception) -> Response:
        return failure(request.app, request.method, request.url.path, exc)

    app.add_exception_handler(EventRejected, event_rejected)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(FactError, fact_error)
    app.add_exception_handler(MoneyError, money_error)
    app.add_exception_handler(Exception, unexpected)  # the last resort: see AnswerFailures
    _install_plan_handlers(app)


def _install_plan_handlers(app: FastAPI) -> None:
    # Imported here and guarded: the plan modules may be absent in a partial checkout.
    try:
        from trailpay.core.plans import PlanError
    except ImportError:
        PlanError = None  # noqa: N806
    try:
        from trailpay.adapters.plan_store import VersionConflict
    except ImportError:
        VersionConflict = None  # noqa: N806

    if PlanError is not None:
        async def plan_error(request: Request, exc: Exception) -> Response:
            path = getattr(exc, "path", None)
            why = getattr(exc, "why", None) or str(exc)
            return problem(422, "Invalid plan", why, path, instance=request.url.path,
                           type_="invalid-plan")

        app.add_exception_handler(PlanError, plan_error)

    if VersionConflict is not None:
        async def version_conflict(request: Request, exc: Exception) -> Response:
            return problem(409, "Version conflict",
                           str(exc) or "a different document was already published under "
                           "this plan version", instance=request.url.path,
                           type_="version-conflict")

        app.add_exception_handler(VersionConflict, version_conflict)
