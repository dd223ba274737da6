"""Dependencies of the gateway's routes, as Annotated aliases."""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from trailpay.adapters import api_keys
from trailpay.adapters.cloudevents import FREE_TEXT, PRINTABLE
from trailpay.adapters.db import Connection, Engine
from trailpay.adapters.kafka import Producer
from trailpay.settings import Settings

# Ids and free text as the API takes them: printable (PostgreSQL text refuses NUL, which
# was a 500 on a dozen routes) and bounded (a 10 kB partner id was stored). A partner id
# is bounded as in the events' schemas; other ids (payouts, disputes, runs, postings,
# references) at 256; free text at 2,000 with tabs and line breaks.
PARTNER_ID = {"min_length": 1, "max_length": 128, "pattern": PRINTABLE}
KEY = {"min_length": 1, "max_length": 256, "pattern": PRINTABLE}
TEXT = {"min_length": 1, "max_length": 2000, "pattern": FREE_TEXT}
PartnerIdPath = Annotated[str, Path(**PARTNER_ID)]
PartnerIdQuery = Annotated[str | None, Query(**PARTNER_ID)]
KeyPath = Annotated[str, Path(**KEY)]

FIRST_YEAR, LAST_YEAR = 1900, 2200
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def iso_day(value: Any) -> Any:
    """A date as the API takes it: the string YYYY-MM-DD, in the years 1900 to 2200.
    Pydantic's lax dates read numbers as Unix times (`{"as_of": 0.0}` made a payout run
    for 1970-01-01) and take any year from 1 (0077-01-01 was accepted)."""
    if isinstance(value, date):
        return value  # a default, or Python calling: already a date
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        raise ValueError(f"must be a date string YYYY-MM-DD, got {value!r:.40}")
    if not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        raise ValueError(f"must be a date in the years {FIRST_YEAR} to {LAST_YEAR}, "
                         f"got {value!r}")
    return value


Day = Annotated[date, BeforeValidator(iso_day), WithJsonSchema(
    {"type": "string", "format": "date", "pattern": "^(19[0-9]{2}|2[01][0-9]{2}|2200)-",
     "description": "YYYY-MM-DD, in the years 1900 to 2200"})]


class RequestBody(BaseModel):
    """A JSON request body: a field the route does not know is refused by name (422),
    never silently dropped, as the event schemas' `additionalProperties: false` do."""

    model_config = ConfigDict(extra="forbid")


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        found: set[str] = set()
        stack = [getattr(route, "dependant", None)]
        while stack:  # the route's parameters and its dependencies', all the way down
            d = stack.pop()
            if d is not None:
                found.update(p.alias for p in d.query_params)
                stack.extend(d.dependencies)
        names = _QUERY_NAMES[id(route)] = frozenset(found)
    return names


async def known_query(request: Request) -> None:
    """A query parameter the operation does not take is refused by name (422), as an
    unknown body field is: `?curency=EUR` silently listed every currency."""
    if not request.query_params:
        return
    unknown = sorted(set(request.query_params) - _query_names(request.scope.get("route")))
    if unknown:
        raise HTTPException(422, f"query.{unknown[0]}: is not a parameter of this operation")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: scopes, and the one partner a partner-bound key may see."""

    name: str
    scopes: frozenset[str]
    partner_id: str | None = None

    def can(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def sees(self, partner_id: str) -> bool:
        return self.partner_id is None or self.partner_id == partner_id


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_producer(request: Request) -> Producer:
    return request.app.state.producer


async def get_conn(request: Request) -> AsyncIterator[Connection]:
    async with request.app.state.engine.begin() as conn:
        yield conn


_bearer = HTTPBearer(auto_error=False)


async def principal_for(state: Any, token: str) -> Principal | None:
    """Who a bearer token is (app state: settings, key cache, read pool); None: nobody."""
    admin = state.settings.trailpay_admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal("admin", frozenset({"admin"}))

    async def lookup(t: str) -> api_keys.ApiKey | None:
        return await api_keys.lookup_pg(state.reads.pool, t)  # the pool lends a connection

    key = await state.keys.get(token, lookup)
    return None if key is None else Principal(key.name, frozenset(key.scopes), key.partner_id)


async def get_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = await principal_for(request.app.state, creds.credentials)
    if principal is None:
        raise HTTPException(401, "unknown or revoked token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(scope: str):
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(scope):
            raise HTTPException(403, f"this key lacks the {scope} scope")
        return principal
    return check


def require_unbound(scope: str, what: str):
    """A scope that a partner-bound key may not use, whatever its scopes (ops and ERP work)."""
    scoped = Depends(require(scope))  # a default, not an annotation: annotations are strings

    async def check(principal: Principal = scoped) -> Principal:
        if principal.partner_id is not None:
            raise HTTPException(403, f"a partner-bound key cannot {what}")
        return principal
    return check


async def partner_enroller(
    partner_id: PartnerIdPath, principal: Annotated[Principal, Depends(require("partners:write"))],
) -> Principal:
    """Enrolment is ops work: a partner-bound key changes no partner's terms, not even its
    own (another partner's answers 404, as if it did not exist; its own 403)."""
    if principal.partner_id is not None:
        visible_partner(principal, partner_id)
        raise HTTPException(403, "a partner-bound key cannot enrol partners or change their "
                                 "terms")
    return principal


async def dispute_opener(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Ops (partners:write) open disputes for any partner; a partner-bound key with
    statements:read opens them on its own statement lines."""
    if principal.can("partners:write") or (principal.partner_id is not None
                                           and principal.can("statements:read")):
        return principal
    raise HTTPException(403, "this key lacks the partners:write scope (or, bound to a partner, "
                             "statements:read)")


def visible_partner(principal: Principal, partner_id: str) -> None:
    """A partner-bound key asking for another partner gets 404, not 403."""
    if not principal.sees(partner_id):
        raise HTTPException(404, f"partner {partner_id} not found")


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ProducerDep = Annotated[Producer, Depends(get_producer)]
# scope="function": the transaction commits before the response is sent, so an answer
# (201, 202) is never ahead of what it reports; a failed commit is an error, not a success.
ConnDep = Annotated[Connection, Depends(get_conn, scope="function")]
EventsWriter = Annotated[Principal, Depends(require("events:write"))]
PlansWriter = Annotated[Principal, Depends(require_unbound("plans:write", "publish plans"))]
PartnersWriter = Annotated[Principal, Depends(partner_enroller)]
StatementsReader = Annotated[Principal, Depends(require("statements:read"))]
PayablesReader = Annotated[Principal, Depends(require("payables:read"))]
PayoutRunner = Annotated[Principal, Depends(require_unbound("payouts:write", "run payouts"))]
PayoutsWriter = Annotated[Principal, Depends(require_unbound("payouts:write", "confirm payouts"))]
DisputeOpener = Annotated[Principal, Depends(dispute_opener)]
DisputeResolver = Annotated[Principal, Depends(require_unbound("partners:write",
                                                               "resolve disputes"))]
# What-if simulations and pilots are partner-ops work on plans: plans:write (or admin),
# never a partner-bound key.
SimulationsWriter = Annotated[Principal, Depends(require_unbound("plans:write",
                                                                 "run simulations"))]
SimulationsReader = Annotated[Principal, Depends(require_unbound("plans:write",
                                                                 "read simulations"))]
PilotsWriter = Annotated[Principal, Depends(require_unbound("plans:write", "run pilots"))]
PilotsReader = Annotated[Principal, Depends(require_unbound("plans:write", "read pilots"))]
