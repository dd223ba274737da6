"""POST /v1/events: CloudEvents intake (structured, binary, batch) onto trailpay.events."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from services.gateway.deps import EventsWriter, ProducerDep, SettingsDep
from trailpay import metrics
from trailpay.adapters.cloudevents import EventRejected, decode_http, encode_kafka

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", status_code=202, operation_id="postEvents",
             summary="Submit CloudEvents (single, binary mode or batch)")
async def post_events(request: Request, _: EventsWriter, producer: ProducerDep,
                      settings: SettingsDep) -> ORJSONResponse:
    body = await request.body()
    try:
        envelopes = decode_http(body, request.headers.get("content-type", ""), request.headers)
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
    return ORJSONResponse(
        {"accepted": len(envelopes), "ids": [{"source": e.source, "id": e.id} for e in envelopes]},
        status_code=202)
