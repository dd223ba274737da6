"""Hostile input never stalls a partition: through the real ledger and accrual consumers on
real PostgreSQL and the broker, each bad record is dead-lettered with its reason and the
records after it on the same partition are still processed; a record that cannot even be
dead-lettered makes /readyz report the stall, and the consumer recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.accrual.main import run as run_accrual
from services.ledger.main import run as run_ledger
from tests.integration.helpers import cloud_event, deal, eventually, setup_programme, uid
from trailpay.adapters.db import raw
from trailpay.adapters.dead_letters import DeadLetter, record
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration


def _own(settings, **extra):
    """Settings with topics and groups of this test's own, so that a stall (on code
    without isolation) holds up no other test."""
    suffix = uid("poison")
    return settings.model_copy(update={
        "topic_events": f"trailpay.events.{suffix}", "topic_ledger": f"trailpay.ledger.{suffix}",
        "group_ledger": f"ledger-{suffix}", "group_accrual": f"accrual-{suffix}",
        "metrics_port": free_port(), **extra})


@contextlib.asynccontextmanager
async def _pipeline(own, engine) -> AsyncIterator[None]:
    """This test's ledger and accrual. On the way out, every entry the ledger wrote is
    applied first: the other tests count entries against applied ones across the database."""
    stop = asyncio.Event()
    accrual = own.model_copy(update={"metrics_port": free_port()})
    tasks = [asyncio.create_task(run_ledger(own, stop)),
             asyncio.create_task(run_accrual(accrual, stop))]
    try:
        yield
        await eventually(lambda: _settled(engine, own.topic_ledger), timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


async def _settled(engine, topic: str) -> bool:
    rows = await _fetch(engine, "SELECT count(*) FROM ledger_entries e WHERE e.topic = $1 AND "
                        "NOT EXISTS (SELECT 1 FROM accrual_applied a WHERE a.entry_id = "
                        "e.entry_id)", topic)
    return rows[0][0] == 0


async def _produce(settings, topic: str, values: list[bytes], partition: int | None = 0,
                   key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


async def _fetch(engine, sql: str, *args):
    async with engine.connect() as conn:
        pg = await raw(conn)
        return await pg.fetch(sql, *args)


def _hostile(p1: str) -> list[tuple[str, bytes, str]]:
    """(what, Kafka value, the field or words its dead letter must name)."""
    def event(**changes) -> dict:
        e = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
        data = changes.pop("data", {})
        e.update(changes)
        e["data"].update(data)
        return e

    return [
        ("nul in id", orjson.dumps(event(id=uid("evt") + "\x00nul")), "id"),
        ("10 kB id", orjson.dumps(event(id="x" * 10_000)), "id"),
        ("400-digit amount", orjson.dumps(event(data={"acv": "9" * 400})), "data.acv"),
        ("currency XYZ", orjson.dumps(event(data={"currency": "XYZ"})), "data.currency"),
        ("raw NUL bytes", b"\x00\xff\xfe not json \x00", "(body)"),
    ]


async def test_hostile_events_are_dead_lettered_and_the_partition_goes_on(client, engine,
                                                                          settings):
    _, (p1, _) = await setup_programme(client)
    own = _own(settings)
    good = [cloud_event("deal.closed", deal(uid("C"), [(p1, "1")])) for _ in range(6)]
    unknown = cloud_event("deal.opened", {"whatever": 1})
    hostile = _hostile(p1)
    # One partition, in this order: good, bad, good, bad, ..., good.
    values = [orjson.dumps(good[0])]
    for g, (_, value, _) in zip(good[1:], hostile, strict=True):
        values += [value, orjson.dumps(g)]
    values.append(orjson.dumps(unknown))
    async with _pipeline(own, engine):
        await _produce(own, own.topic_events, values)

        async def all_good_journaled():
            rows = await _fetch(engine, "SELECT count(*) FROM journal WHERE event_id = "
                                "ANY($1::text[])", [g["id"] for g in good])
            return rows[0][0] == len(good)

        await eventually(all_good_journaled, timeout=60)

        async def letters():
            rows = await _fetch(engine, 'SELECT "offset", reason, field, event_id, raw, stage '
                                "FROM dead_letters WHERE topic = $1 ORDER BY \"offset\"",
                                own.topic_events)
            return rows if len(rows) >= len(hostile) + 1 else None

        rows = await eventually(letters, timeout=30)
    by_offset = {r["offset"]: r for r in rows}
    assert len(by_offset) == len(rows) == len(hostile) + 1  # each once
    for i, (what, value, names) in enumerate(hostile):
        row = by_offset[2 * i + 1]
        assert row["stage"] == "ledger", what
        assert row["raw"] == value, what  # the bytes as they came, NUL and all
        assert row["reason"] and names in (row["field"] or "") + row["reason"], (what, row)
    assert by_offset[1]["event_id"].endswith("\\u0000nul")  # readable, and storable
    assert len(by_offset[3]["event_id"]) <= 256
    last = by_offset[len(values) - 1]
    assert last["event_id"] == unknown["id"] and last["field"] == "type"


async def test_http_intake_refuses_the_same_events_with_a_problem_naming_the_field(client):
    _, (p1, _) = await setup_programme(client)
    for what, value, names in _hostile(p1)[:4]:
        r = await client.post("/v1/events", content=value,
                              headers={"Content-Type": "application/cloudevents+json"})
        assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["field"] == names, (what, problem)
        assert len(r.content) < 2000, what  # the 10 kB value is not echoed back


async def test_poison_entry_in_the_accrual_is_dead_lettered_and_the_partner_goes_on(
        client, engine, settings):
    _, (p1, _) = await setup_programme(client)
    own = _own(settings)
    first = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")], acv="1000.00"))
    second = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")], acv="2000.00"))

    async def applied(event_id: str) -> bool:
        rows = await _fetch(engine, "SELECT count(*) FROM accrual_applied a JOIN journal j "
                            "ON j.seq = a.journal_seq WHERE j.event_id = $1", event_id)
        return rows[0][0] == 1

    async with _pipeline(own, engine):
        await _produce(own, own.topic_events, [orjson.dumps(first)], key=b"c1")
        await eventually(lambda: applied(first["id"]), timeout=60)
        [entry] = await _fetch(engine, "SELECT e.payload::text FROM ledger_entries e JOIN "
                               "journal j ON j.seq = e.journal_seq WHERE j.event_id = $1",
                               first["id"])
        # An entry no plan arithmetic survives (the ledger refuses such amounts at the door
        # now; an entry is the accrual's input all the same): InvalidOperation on rounding.
        poisoned = orjson.loads(entry[0])
        poisoned["entry_id"] = uid("poison-entry")
        poisoned["customer_id"] = poisoned["data"]["customer_id"] = uid("C")
        poisoned["deal_id"] = poisoned["data"]["deal_id"] = uid("D")
        poisoned["data"]["acv"] = poisoned["data"]["tcv"] = "9" * 400
        # Keyed by the partner, as the ledger publishes: ahead of the partner's next entry.
        await _produce(own, own.topic_ledger, [orjson.dumps(poisoned)], partition=None,
                       key=p1.encode())
        await _produce(own, own.topic_events, [orjson.dumps(second)], key=b"c2")
        await eventually(lambda: applied(second["id"]), timeout=60)

        async def letter():
            rows = await _fetch(engine, "SELECT stage, reason, event_id, raw FROM dead_letters "
                                "WHERE event_id = $1 AND stage = 'accrual'", first["id"])
            return rows or None

        [row] = await eventually(letter, timeout=30)
    # The engine's fold refuses the entry itself (core.fold.REFUSALS): a dead letter of the
    # accrual stage with the entry as its payload, and nothing else in its batch held up.
    assert row["stage"] == "accrual" and "InvalidOperation" in row["reason"]
    assert row["event_id"] == first["id"] and orjson.loads(row["raw"])["entry_id"] == \
        poisoned["entry_id"]


async def test_a_record_that_cannot_be_dead_lettered_stalls_readiness_then_recovers(
        client, engine, settings):
    _, (p1, _) = await setup_programme(client)
    own = _own(settings, consumer_stall_failures=3)
    refuse = f"refuse_{uid('dl').replace('-', '_')}"
    # Dead letters of this test's topic cannot be written, until the trigger goes.
    async with engine.begin() as conn:
        pg = await raw(conn)
        await pg.execute(
            f"CREATE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.topic = '{own.topic_events}' THEN RAISE EXCEPTION 'dead letters refused'; "
            f"END IF; RETURN NEW; END $$")
        await pg.execute(f"CREATE TRIGGER {refuse} BEFORE INSERT ON dead_letters FOR EACH ROW "
                         f"EXECUTE FUNCTION {refuse}()")
    ops = f"http://127.0.0.1:{own.metrics_port}"
    after = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
    try:
        async with _pipeline(own, engine), httpx.AsyncClient(timeout=10) as http:
            await _produce(own, own.topic_events, [b'{"not": "an event"}', orjson.dumps(after)])

            async def stalled():
                try:
                    r = await http.get(f"{ops}/readyz")
                except httpx.TransportError:
                    return None
                stuck = r.status_code == 503 and not r.json()["checks"]["consuming"]
                return r if stuck else None

            r = await eventually(stalled, timeout=60)
            body = r.json()
            assert body["checks"] == {"database": True, "broker": True, "consuming": False}
            assert body["stall"]["piece"].startswith(f"{own.topic_events}/0@")
            assert "dead letters refused" in body["stall"]["error"]
            metrics = (await http.get(f"{ops}/metrics")).text
            assert 'trailpay_consumer_consecutive_failures{service="ledger"}' in metrics
            assert 'trailpay_stalled_seconds{service="ledger"}' in metrics
            journaled = await _fetch(engine, "SELECT count(*) FROM journal WHERE event_id = $1",
                                     after["id"])
            assert journaled[0][0] == 0  # nothing skipped past the unrecorded record

            async with engine.begin() as conn:
                pg = await raw(conn)
                await pg.execute(f"DROP TRIGGER {refuse} ON dead_letters")

            async def recovered():
                r = await http.get(f"{ops}/readyz")
                rows = await _fetch(engine, "SELECT count(*) FROM journal WHERE event_id = $1",
                                    after["id"])
                return r.status_code == 200 and rows[0][0] == 1

            await eventually(recovered, timeout=60)
            rows = await _fetch(engine, "SELECT reason FROM dead_letters WHERE topic = $1",
                                own.topic_events)
            # Once: by the handler ("invalid: ...") or, when the trigger went between the
            # handler's failure and the poison callback, as poison with that failure.
            assert len(rows) == 1 and rows[0][0].startswith(("invalid", "poison")), rows
    finally:
        async with engine.begin() as conn:
            pg = await raw(conn)
            await pg.execute(f"DROP TRIGGER IF EXISTS {refuse} ON dead_letters")
            await pg.execute(f"DROP FUNCTION IF EXISTS {refuse}()")


async def test_a_redelivered_record_is_dead_lettered_once(engine):
    """A batch redelivered after a kill before the offset commit brings its invalid records
    again: stored once. Another record at the same place (a memory broker's new log after a
    restart) is a new letter."""
    topic = f"trailpay.events.{uid('redeliver')}"
    letter = DeadLetter(stage="ledger", reason="invalid: not valid JSON", payload="\x00x",
                        topic=topic, partition=2, offset=41, raw=b"\x00x")
    elsewhere = replace(letter, payload="\x00y", raw=b"\x00y")
    stored = []
    for d in (letter, letter, elsewhere):
        async with engine.begin() as conn:
            stored.append(len(await record(conn, [d])))
    assert stored == [1, 0, 1]
    rows = await _fetch(engine, "SELECT raw FROM dead_letters WHERE topic = $1 ORDER BY id",
                        topic)
    assert [r[0] for r in rows] == [b"\x00x", b"\x00y"]
