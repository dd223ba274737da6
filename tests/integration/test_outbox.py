"""The ledger's outbox on real PostgreSQL and Kafka: rows the writer hands over are sent
from memory, the others read from the table; a writer that commits late is never passed
over (the publisher waits for it); nothing twice, nothing lost.

In a database of its own: its entries are on a topic no accrual reads, and the session's
database must hold only entries the accrual applies (test_rebuild waits for that)."""

from __future__ import annotations

import secrets
from decimal import Decimal

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import fresh_database
from tests.integration.helpers import drain, uid
from tests.integration.test_storage import _record
from tests.kit import at, deal
from trailpay import metrics
from trailpay.adapters import customers, journal_store, ledger_entries, outbox
from trailpay.adapters.db import create_engine, raw
from trailpay.core.attribution import Customer
from trailpay.core.facts import PartnerShare
from trailpay.core.journal import LedgerEntry
from trailpay.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_database(pg_server_url: str):
    with fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture
async def own_engine(own_database: str):
    eng = create_engine(Settings(database_url=own_database))
    yield eng
    await eng.dispose()


def _reads(source: str) -> float:
    return metrics.OUTBOX_READS.labels("ledger_entries", source)._value.get()


async def _commit_entries(engine, seq: int, topic: str, n: int) -> outbox.Committed | None:
    """n entries of one journaled event, written as the ledger writes them, committed."""
    fact = deal()
    entries = [LedgerEntry(f"{seq}:{uid('P')}", seq, f"e{seq}", "test", at("2026-02-01"),
                           f"P{i}", "C1", "D1", Decimal(1), None, fact) for i in range(n)]
    async with engine.begin() as conn:
        return await ledger_entries.write(conn, entries, topic)


async def _cursor_at_end(engine, topic: str) -> None:
    """This test's topic starts after every row committed so far."""
    async with engine.begin() as conn:
        await (await raw(conn)).execute(
            "INSERT INTO outbox_cursors (box, topic, last_xid, last_id) SELECT "
            "'ledger_entries', $1, coalesce(max(xid), '0'), coalesce(max(id), 0) "
            "FROM ledger_entries", topic)


async def _publish(engine, producer, topic: str, handoff=None) -> int:
    return await outbox.publish_once(engine, producer, outbox.LEDGER_ENTRIES, topic, 100, handoff)


async def test_handed_over_rows_go_from_memory_and_the_others_from_the_table(own_engine, broker):
    engine = own_engine
    topic = f"test.outbox.{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [_record(uid("e"))])).appended[0].seq
    handoff = outbox.Handoff()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        await _cursor_at_end(engine, topic)
        first = await _commit_entries(engine, seq, topic, 3)
        assert first is not None and len(first.ids) == 3
        handoff.put(first)
        before = _reads("handoff"), _reads("table")
        assert await _publish(engine, producer, topic, handoff) == 3
        assert (_reads("handoff"), _reads("table")) == (before[0] + 1, before[1])
        assert len(handoff) == 0

        missed = await _commit_entries(engine, seq, topic, 2)  # never handed over
        assert missed is not None
        after_gap = await _commit_entries(engine, seq, topic, 2)
        assert after_gap is not None
        handoff.put(after_gap)
        assert await _publish(engine, producer, topic, handoff) == 4
        assert _reads("table") == before[1] + 1 and len(handoff) == 0
        assert await _publish(engine, producer, topic, handoff) == 0  # nothing twice
    finally:
        await producer.stop()

    got = await drain(broker, topic, 7, settle=True)
    ids = [orjson.loads(r.value)["entry_id"] for r in sorted(got, key=lambda r: (r.partition,
                                                                                r.offset))]
    sent = [m[1] for b in (first, missed, after_gap) for m in b.messages]
    assert len(got) == 7 and sorted(ids) == sorted(orjson.loads(v)["entry_id"] for v in sent)


async def test_a_writer_that_commits_late_is_waited_for_not_passed_over(own_engine, broker):
    """Two writers without a lock: the first draws its ids and holds its transaction open,
    the second writes after it and commits first. The publisher sends nothing past the
    open transaction; once it commits, both writers' rows go, the first's first."""
    engine = own_engine
    topic = f"test.outbox.{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [_record(uid("e"))])).appended[0].seq
    fact = deal()

    def entries(n: int) -> list[LedgerEntry]:
        return [LedgerEntry(f"{seq}:{uid('P')}", seq, f"e{seq}", "test", at("2026-02-01"),
                            f"P{i}", "C1", "D1", Decimal(1), None, fact) for i in range(n)]

    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        await _cursor_at_end(engine, topic)
        async with engine.connect() as slow:
            tx = await slow.begin()
            early = await ledger_entries.write(slow, entries(2), topic)
            assert early is not None
            late = await _commit_entries(engine, seq, topic, 3)
            assert late is not None and late.ids[0] > early.ids[-1]
            assert await _publish(engine, producer, topic) == 0  # the early writer is open
            await tx.commit()
        assert await _publish(engine, producer, topic) == 5
        assert await _publish(engine, producer, topic) == 0
    finally:
        await producer.stop()
    got = await drain(broker, topic, 5, settle=True)
    assert sorted(orjson.loads(r.value)["entry_id"] for r in got) == sorted(
        orjson.loads(v)["entry_id"] for b in (early, late) for _, v in b.messages)
    # Partner P0 has an entry from each writer, on one partition: the early one first.
    p0 = [orjson.loads(r.value)["entry_id"] for r in sorted(got, key=lambda r: r.offset)
          if r.key == b"P0"]
    assert p0 == [orjson.loads(b.messages[0][1])["entry_id"] for b in (early, late)]


async def test_a_customer_written_by_a_younger_transaction_makes_the_batch_start_again(
        own_engine):
    """The publisher's order is the writers' transaction order. A ledger batch that began
    writing before the deal's batch, and reads the deal's customer after that batch
    committed, would publish its entries for the customer before the deal's: reading
    such a customer raises, and the ledger starts the batch again (ingest.handle_batch)."""
    def customer(cid: str) -> Customer:
        return Customer(cid, f"D-{cid}", "USD", (PartnerShare("P1", "sourced", Decimal(1)),))

    older, younger = uid("C-old"), uid("C-new")
    async with own_engine.begin() as conn:
        await customers.save(conn, {older: (customer(older), 1)})
    async with own_engine.connect() as batch:
        tx = await batch.begin()
        await (await raw(batch)).fetchval("SELECT pg_current_xact_id()")  # it has begun writing
        async with own_engine.begin() as conn:  # the deal's batch, younger, commits first
            await customers.save(conn, {younger: (customer(younger), 2)})
        assert set(await customers.load(batch, {older})) == {older}
        with pytest.raises(customers.WrittenAfterUs):
            await customers.load(batch, {older, younger})
        await tx.rollback()
    async with own_engine.begin() as again:  # started again: younger than the writer
        await (await raw(again)).fetchval("SELECT pg_current_xact_id()")
        assert set(await customers.load(again, {older, younger})) == {older, younger}
