"""Commands trailpay produces itself onto trailpay.events: payout runs, confirmations, disputes.

A command is a CloudEvent with source `trailpay.gateway` and a deterministic id, so
the ledger journals it, attributes it to its partner and the accrual folds it like
any partner-level fact: a replay of the journal rebuilds its effect. The gateway
answers before the ledger has journaled it, so `request_once` keeps, per command
id, the hash of the request and the event produced: the same request again re-sends
the same event (the journal acknowledges it as a duplicate), another request under
the same id is a `Contradiction` (HTTP 409), race-free under concurrent requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters import intake
from trailpay.adapters.db import raw
from trailpay.adapters.kafka import send_all
from trailpay.core.facts import COMMAND_SOURCE
from trailpay.core.journal import body_hash


class Contradiction(Exception):
    """A command id was already requested with another body."""


def command_event(event_id: str, type_: str, at: datetime, data: Mapping[str, Any]) -> bytes:
    """The structured-mode CloudEvent of a command, in canonical JSON."""
    return orjson.dumps({"specversion": "1.0", "id": event_id, "source": COMMAND_SOURCE,
                         "type": type_, "time": at.isoformat(), "data": dict(data)},
                        option=orjson.OPT_SORT_KEYS)


async def send(producer: AIOKafkaProducer, topic: str, events: list[tuple[str, bytes]]) -> None:
    """Produce (key, event) pairs and wait until the broker has them all."""
    await send_all(producer, topic, [(key.encode(), value) for key, value in events])


async def request_once(conn: AsyncConnection, producer: AIOKafkaProducer, topic: str,
                       event_id: str, key: str, request: Mapping[str, Any], event: bytes) -> bool:
    """Produce `event` unless this command id was requested before; True when it is new.

    Raises Contradiction when the id was requested with another `request` body.
    Runs in the caller's transaction: if producing fails, nothing is remembered.
    """
    digest = body_hash(orjson.dumps(dict(request), option=orjson.OPT_SORT_KEYS))
    pg = await raw(conn)
    inserted = await pg.fetchval(
        "INSERT INTO command_requests (event_id, request_hash, event) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true", event_id, digest, event.decode())
    if not inserted:
        row = await pg.fetchrow(
            "SELECT request_hash, event FROM command_requests WHERE event_id = $1", event_id)
        if row[0] != digest:
            raise Contradiction(event_id)
        event = row[1].encode()
    else:  # kept until journaled, like the HTTP intake's events (adapters/intake.py)
        await intake.accept(conn, [(COMMAND_SOURCE, event_id, key.encode(), event)])
    await send(producer, topic, [(key, event)])
    return bool(inserted)
