"""POST /v1/events: CloudEvents intake (structured, binary, batch) onto trailpay.events,
through the intake table: a 202 means the events are in PostgreSQL (adapters/intake.py)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Request

from services.gateway.deps import EngineDep, EventsWriter, Principal, ProducerDep, SettingsDep
from services.gateway.limits import MiB, body_limit
from services.gateway.render import JSONBody
from trailpay import metrics
from trailpay.adapters import customers, intake
from trailpay.adapters.cloudevents import (
    BATCH, JSON, MAX_BATCH, SCHEMAS, STRUCTURED, Envelope, EventRejected, decode_http, encode_kafka,
)
from trailpay.adapters.db import Engine
from trailpay.core.facts import (
    COMMAND_SOURCE, COMMAND_TYPES, ComarketingCompleted, DealClosed, ReferralQualified,
)

router = APIRouter(prefix="/v1", tags=["events"])

# What a partner-bound key may post, about its own partner only. Adjustments, payout
# confirmations and customer facts (renewals, usage, refunds, churn, milestones) come
# from ops, the ERP and billing: a customer fact goes to the partners of the customer's
# deal, which the door cannot know for a fact still parked or a deal still on its way.
BOUND_TYPES = (ReferralQualified.type, ComarketingCompleted.type, DealClosed.type)


def refuse_commands(envelopes: list[Envelope], batch: bool) -> None:
    """trailpay's own commands (and its source) come only from its API, never from intake."""
    for i, env in enumerate(envelopes):
        at = f"[{i}]." if batch else ""
        if env.type in COMMAND_TYPES:
            raise EventRejected(f"{env.type} is a trailpay command: use POST /v1/payout-runs or "
                                "/v1/disputes", f"{at}type", status=422)
        if env.source == COMMAND_SOURCE:
            raise EventRejected(f"source {COMMAND_SOURCE} is reserved for trailpay's own commands",
                                f"{at}source", status=422)


async def confine(principal: Principal, envelopes: list[Envelope], batch: bool,
                  engine: Engine) -> None:
    """A partner-bound key posts facts about its own partner only, all or nothing: another
    partner named anywhere answers 404 (as if it did not exist), a type it may not post
    403, and so does a deal for a customer already attributed to anyone else (a new deal
    would take the customer's later facts away from them)."""
    own = principal.partner_id
    if own is None:
        return
    deals: dict[str, str] = {}  # customer_id -> where it is named
    for i, env in enumerate(envelopes):
        at = f"[{i}]." if batch else ""
        fact = env.fact
        if env.type not in BOUND_TYPES:
            raise HTTPException(403, f"{at}type: a partner-bound key cannot post {env.type} "
                                     f"events; it may post {', '.join(BOUND_TYPES)} about "
                                     "its own partner")
        if isinstance(fact, DealClosed):
            for j, share in enumerate(fact.partners):
                if share.partner_id != own:
                    raise HTTPException(404, f"{at}data.partners[{j}].partner_id: partner "
                                             f"{share.partner_id} not found")
            deals.setdefault(fact.customer_id, f"{at}data.customer_id")
        elif getattr(fact, "partner_id") != own:
            raise HTTPException(404, f"{at}data.partner_id: partner "
                                     f"{getattr(fact, 'partner_id')} not found")
    if deals:
        async with engine.connect() as conn:
            known = await customers.load(conn, set(deals))
        for customer_id, field in deals.items():
            c = known.get(customer_id)
            if c is not None and any(p.partner_id != own for p in c.partners):
                raise HTTPException(403, f"{field}: customer {customer_id} is attributed to "
                                         "other partners; a partner-bound key posts deals "
                                         "for its own customers only")


def _envelope_schema() -> dict:
    """schemas/cloudevent.json as the OpenAPI's event schema (an event's `data` is checked
    against schemas/events/<type>.json, which its description names)."""
    doc = orjson.loads((SCHEMAS / "cloudevent.json").read_bytes())
    return {k: v for k, v in doc.items() if k not in ("$schema", "$id")}


_EVENT = _envelope_schema()
# At most MAX_BATCH events, answered 413 past that (not a maxItems: that would be a 422).
_BATCH = {"type": "array", "items": _EVENT, "minItems": 1,
          "description": f"a batch of at most {MAX_BATCH} events (413 past that)"}


@router.post("/events", status_code=202, operation_id="postEvents",
             summary="Submit CloudEvents (single, binary mode or batch)",
             responses={400: {"description": "An event is invalid; `field` names it"},
                        413: {}, 415: {"description": "Not a CloudEvents or JSON content type"},
                        503: {"description": "The database is unavailable: nothing was accepted; "
                                             "retry after `Retry-After` seconds",
                              "headers": {"Retry-After": {"schema": {"type": "integer"}}}}},
             openapi_extra=body_limit(1 * MiB, requestBody={"required": True, "content": {
                 STRUCTURED: {"schema": _EVENT}, BATCH: {"schema": _BATCH},
                 JSON: {"schema": {"oneOf": [_EVENT, _BATCH]}}}}))
async def post_events(request: Request, principal: EventsWriter, producer: ProducerDep,
                      settings: SettingsDep, engine: EngineDep) -> JSONBody:
    body = await request.body()
    batch = body.lstrip()[:1] == b"["
    try:
        envelopes = decode_http(body, request.headers.get("content-type", ""), request.headers)
        refuse_commands(envelopes, batch)
    except EventRejected as exc:
        metrics.EVENTS_REJECTED.labels("http", "invalid").inc()
        raise exc from None
    try:
        await confine(principal, envelopes, batch, engine)
    except HTTPException:
        metrics.EVENTS_REJECTED.labels("http", "forbidden").inc()
        raise
    for env in envelopes:
        metrics.EVENTS_RECEIVED.labels("http", env.type).inc()
    # Durable before the 202 (adapters/intake.py): the broker may forget what it holds.
    rows = [(e.source, e.id, e.key.encode(), encode_kafka(e)) for e in envelopes]
    async with engine.begin() as conn:
        await intake.accept(conn, rows)
    await intake.send(producer, settings.topic_events, [(r[2], r[3]) for r in rows],
                      settings.intake_send_timeout)
    for env in envelopes:
        metrics.EVENTS_ACCEPTED.labels("http", env.type).inc()
    return JSONBody(
        {"accepted": len(envelopes), "ids": [{"source": e.source, "id": e.id} for e in envelopes]},
        status_code=202)
