"""POST /v1/events: CloudEvents intake (structured, binary, batch) onto trailpay.events."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.gateway.render import JSONBody
from services.gateway.deps import EventsWriter, ProducerDep, SettingsDep
from trailpay import metrics
from trailpay.adapters.cloudevents import Envelope, EventRejected, decode_http, encode_kafka
from trailpay.core.facts import COMMAND_SOURCE, COMMAND_TYPES

router = APIRouter(prefix="/v1", tags=["events"])


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


@router.post("/events", status_code=202, operation_id="postEvents",
             summary="Submit CloudEvents (single, binary mode or batch)")
async def post_events(request: Request, _: EventsWriter, producer: ProducerDep,
                      settings: SettingsDep) -> JSONBody:
    body = await request.body()
    try:
        envelopes = decode_http(body, request.headers.get("content-type", ""), request.headers)
        refuse_commands(envelopes, body.lstrip()[:1] == b"[")
    except EventRejected as exc:
        metrics.EVENTS_REJECTED.labels("http", "invalid").inc()
        raise exc from None
    futures = []
    for env in envelopes:
        metrics.EVENTS_RECEIVED.labels("http", env.type).inc()
        futures.append(await producer.send(settings.topic_events, key=env.key.encode(),
                                           value=encode_kafka(env)))
    for f in futures:
        await f
    for env in envelopes:
        metrics.EVENTS_ACCEPTED.labels("http", env.type).inc()
    return JSONBody(
        {"accepted": len(envelopes), "ids": [{"source": e.source, "id": e.id} for e in envelopes]},
        status_code=202)
