"""Dead letters: bad input is kept with its reason, never dropped.

Rows go to the dead_letters table inside the caller's transaction; the same
record is then published to trailpay.events.dlq after commit.

Writing a dead letter must not fail whatever the message held, or the batch it
belongs to fails with it: the message's bytes go to a bytea column (`raw`), and
every text column gets a copy PostgreSQL takes (NUL escaped as \\u0000, lone
surrogates escaped, bounded in length). A letter that lacks the event's id,
source or type (a message refused before it was decoded, of an unknown type say)
gets them from the message when they can be read there.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay import metrics
from trailpay.adapters.db import raw as driver
from trailpay.adapters.isolation import describe
from trailpay.adapters.kafka import send_all

log = logging.getLogger(__name__)


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
    raw: bytes | None = None  # the message's bytes; None: the payload's UTF-8 is them

    def to_message(self) -> bytes:
        """The DLQ message: the letter as JSON; the raw bytes (base64) only when the
        payload text does not hold them exactly."""
        out = asdict(self)
        raw = out.pop("raw")
        if raw is not None and raw != self.payload.encode("utf-8", "surrogatepass"):
            out["raw_base64"] = base64.b64encode(raw).decode()
        return orjson.dumps(out)


COLUMNS = ("stage", "reason", "payload", "field", "source", "event_id", "type", "topic",
           "partition", "offset", "raw")

# Text bounds, in characters after escaping. source + event_id share a btree index
# (dead_letters_event), whose entries must stay under about 2,700 bytes: 2 x 256 characters
# of at most 4 bytes each leave room. Longer values are cut, with an ellipsis.
LIMITS: Mapping[str, int] = {
    "stage": 32, "reason": 2000, "payload": 1 << 20, "field": 512, "source": 256,
    "event_id": 256, "type": 256, "topic": 256,
}


def safe_text(value: str, limit: int) -> str:
    """Text PostgreSQL accepts: NUL as the six characters \\u0000, lone surrogates
    backslash-escaped, at most `limit` characters (cut ones end in an ellipsis)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value if len(value) <= limit else value[:limit - 1] + "…"


def _readable(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def identify(value: bytes | str, headers: Sequence[tuple[str, bytes | None]] = ()
             ) -> dict[str, str]:
    """The event's id, source and type, as far as they can be read from a message that
    may be anything: a CloudEvent (structured, or binary with ce_* headers) or a ledger
    entry. Keys are DeadLetter's (event_id, source, type); unreadable ones are left out."""
    found: dict[str, str] = {}
    for name, header in headers:
        attribute = name.lower().removeprefix("ce_") if name.lower().startswith("ce_") else ""
        if attribute in ("id", "source", "type") and header is not None:
            text = header.decode("utf-8", "replace")
            found["event_id" if attribute == "id" else attribute] = text
    try:
        doc = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return found
    if isinstance(doc, dict):
        for key, name in (("id", "event_id"), ("event_id", "event_id"), ("source", "source"),
                          ("type", "type")):
            text = _readable(doc.get(key))
            if text is not None:
                found.setdefault(name, text)
    return found


def _safe(d: DeadLetter) -> DeadLetter:
    """The letter as it can be stored: missing identity read from the payload, raw bytes
    set, text bounded and escaped."""
    raw = d.raw if d.raw is not None else d.payload.encode("utf-8", "surrogatepass")
    if d.event_id is None or d.source is None or d.type is None:
        known = identify(raw)
        d = replace(d, event_id=d.event_id or known.get("event_id"),
                    source=d.source or known.get("source"), type=d.type or known.get("type"))
    texts = {name: safe_text(v, LIMITS[name]) for name in LIMITS
             if isinstance(v := getattr(d, name), str)}
    return replace(d, raw=raw, **texts)


async def record(conn: AsyncConnection, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Store letters; one of a Kafka record already stored (the same stage, topic,
    partition, offset and bytes: its batch was redelivered after a crash before the offset
    commit, or after a rebalance) is not stored twice. Returns the letters stored."""
    if not letters:
        return []
    safe = [_safe(d) for d in letters]
    pg = await driver(conn)
    placed = [d for d in safe if d.topic is not None and d.offset is not None]
    if placed:
        rows = await pg.fetch(
            'SELECT stage, topic, partition, "offset", raw FROM dead_letters '
            'WHERE (topic, partition, "offset") IN (SELECT * FROM unnest($1::text[], '
            "$2::int[], $3::bigint[]))", [d.topic for d in placed],
            [d.partition for d in placed], [d.offset for d in placed])
        stored = {tuple(r) for r in rows}
        safe = [d for d in safe if (d.stage, d.topic, d.partition, d.offset, d.raw) not in stored]
    if not safe:
        return []
    await pg.copy_records_to_table(
        "dead_letters", columns=COLUMNS,
        records=[tuple(getattr(d, c) for c in COLUMNS) for d in safe])
    for d in safe:
        metrics.DEAD_LETTERS.labels(d.stage, d.reason.split(":", 1)[0][:60]).inc()
    return safe


async def publish(producer, topic: str, letters: Sequence[DeadLetter]) -> None:
    """Best effort after commit: the table is the record of truth."""
    await send_all(producer, topic, [((d.event_id or "").encode(), d.to_message())
                                     for d in letters])


# --- poison records: the consumers' last resort -------------------------------------------

def poison_letter(stage: str, record: ConsumerRecord, exc: BaseException) -> DeadLetter:
    """The dead letter of a record its consumer's handler failed on alone."""
    value = record.value if record.value is not None else b""
    headers = list(record.headers or ())
    return DeadLetter(
        stage=stage, reason=f"poison: {describe(exc)}", payload=value.decode("utf-8", "replace"),
        topic=record.topic, partition=record.partition, offset=record.offset, raw=value,
        **identify(value, headers))


PoisonCallback = Callable[[ConsumerRecord, BaseException], Awaitable[None]]


def poison(stage: str, dlq_topic: str) -> Callable[[AsyncEngine, Any], PoisonCallback]:
    """A consumer service's poison callback (trailpay.adapters.consumer_service): the record
    is dead-lettered in its own transaction, once however often it is redelivered, then
    published to the DLQ topic (best effort). Raises when the table write fails, so that
    the record is tried again rather than skipped unrecorded."""

    def bind(engine: AsyncEngine, producer: Any) -> PoisonCallback:
        async def dead_letter(message: ConsumerRecord, exc: BaseException) -> None:
            letter = _safe(poison_letter(stage, message, exc))
            async with engine.begin() as conn:
                if not await record(conn, [letter]):
                    return  # stored before: the record was redelivered
            try:
                await publish(producer, dlq_topic, [letter])
            except Exception as failure:  # noqa: BLE001 - the table holds it; the DLQ is a copy
                log.warning("poison record %s/%s@%s is in dead_letters but not on %s: %s",
                            message.topic, message.partition, message.offset, dlq_topic,
                            describe(failure))

        return dead_letter

    return bind

