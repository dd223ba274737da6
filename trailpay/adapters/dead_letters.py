"""Dead letters: bad input is kept with its reason, never dropped.

Rows go to the dead_letters table inside the caller's transaction; the same
record is then published to trailpay.events.dlq after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay import metrics
from trailpay.adapters.db import raw
from trailpay.adapters.kafka import send_all


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str  # intake | ledger | accrual
    reason: str
    payload: str
    field: str | None = None
    source: str | None = None
    event_id: str | None = None
    type: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def to_message(self) -> bytes:
        return orjson.dumps(asdict(self))


COLUMNS = ("stage", "reason", "payload", "field", "source", "event_id", "type", "topic",
           "partition", "offset")


async def record(conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    pg = await raw(conn)
    await pg.copy_records_to_table(
        "dead_letters", columns=COLUMNS,
        records=[tuple(getattr(d, c) for c in COLUMNS) for d in letters])
    for d in letters:
        metrics.DEAD_LETTERS.labels(d.stage, d.reason.split(":", 1)[0][:60]).inc()


async def publish(producer, topic: str, letters: Sequence[DeadLetter]) -> None:
    """Best effort after commit: the table is the record of truth."""
    await send_all(producer, topic, [((d.event_id or "").encode(), d.to_message())
                                     for d in letters])
