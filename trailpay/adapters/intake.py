"""The HTTP intake's outbox: an event answered 202 is in PostgreSQL before the answer.

The embedded broker keeps what it holds in memory only, so an event the gateway had
produced and answered 202 for was lost if the broker restarted before the ledger
journaled it. Now `accept` writes the events in the request's transaction, the
gateway answers once that commits and sends them on (a broker that does not answer
in time does not fail the request: the row is there), and `sweep`, run by every
gateway, deletes the rows the journal or the dead letters hold and sends again the
ones still unjournaled after `redeliver` seconds. Re-sending is harmless: the journal
acknowledges the same (source, id) and body as a duplicate.

Same pattern as adapters/outbox.py (the effect and the message in one transaction,
publish after commit), with one difference: the rows are not done when the broker
has them, only when the journal does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay.adapters.db import raw
from trailpay.adapters.kafka import send_all
from trailpay.settings import Settings

log = logging.getLogger(__name__)

COLUMNS = ("source", "event_id", "key", "value")


async def accept(conn: AsyncConnection, events: Sequence[tuple[str, str, bytes, bytes]]) -> None:
    """Keep (source, event id, Kafka key, Kafka value) in the caller's transaction."""
    if events:
        pg = await raw(conn)
        await pg.copy_records_to_table("intake", columns=COLUMNS, records=list(events))


async def send(producer: AIOKafkaProducer, topic: str, messages: Sequence[tuple[bytes, bytes]],
               timeout: float) -> bool:
    """Send committed intake rows now; False when the broker did not take them in time
    (the sweeper sends them again)."""
    try:
        await asyncio.wait_for(send_all(producer, topic, messages), timeout)
        return True
    except Exception as exc:  # noqa: BLE001 - the rows are durable; the sweeper retries
        log.warning("intake: %d event(s) not sent now (%s: %s); the sweeper will send them",
                    len(messages), type(exc).__name__, exc)
        return False


async def sweep_once(engine: AsyncEngine, producer: AIOKafkaProducer, topic: str,
                     redeliver: float, limit: int = 5000, timeout: float = 10.0) -> tuple[int, int]:
    """Forget rows the journal or the dead letters hold; re-send up to `limit` rows sent
    more than `redeliver` seconds ago. Returns (forgotten, re-sent)."""
    async with engine.begin() as conn:
        pg = await raw(conn)
        done = await pg.fetchval(
            "WITH gone AS (DELETE FROM intake i WHERE EXISTS (SELECT 1 FROM journal j "
            "WHERE j.source = i.source AND j.event_id = i.event_id) OR EXISTS (SELECT 1 "
            "FROM dead_letters d WHERE d.source = i.source AND d.event_id = i.event_id) "
            "RETURNING 1) SELECT count(*) FROM gone")
    async with engine.begin() as conn:
        pg = await raw(conn)
        # SKIP LOCKED: two gateways sweeping at once re-send different rows.
        rows = await pg.fetch(
            "SELECT id, key, value FROM intake WHERE sent_at < now() - make_interval(secs => $1) "
            "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED", redeliver, limit)
        if not rows:
            return done, 0
        await asyncio.wait_for(send_all(producer, topic, [(r[1], r[2]) for r in rows]), timeout)
        await pg.execute("UPDATE intake SET sent_at = now() WHERE id = ANY($1::bigint[])",
                         [r[0] for r in rows])
    log.info("intake: re-sent %d event(s) not journaled after %.0f s", len(rows), redeliver)
    return done, len(rows)


async def pending(engine: AsyncEngine) -> int:
    """Rows not yet known to be journaled (ops and tests)."""
    async with engine.connect() as conn:
        return await (await raw(conn)).fetchval("SELECT count(*) FROM intake")


async def sweep(engine: AsyncEngine, producer: AIOKafkaProducer, settings: Settings,
                stop: asyncio.Event) -> None:
    """Sweep every `redeliver_sweep_seconds` until stopped; failures (database or broker
    away) are logged and tried again next time. Re-creates trailpay's topics before a
    re-send, in case the broker came back empty."""
    from trailpay.adapters.kafka import ensure_topics

    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.redeliver_sweep_seconds)
        if stop.is_set():
            return
        try:
            await sweep_once(engine, producer, settings.topic_events,
                             settings.redeliver_seconds)
        except Exception as exc:  # noqa: BLE001 - try again next time
            log.warning("intake sweep failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ensure_topics(settings, attempts=1), 10)
