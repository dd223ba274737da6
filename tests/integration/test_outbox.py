"""The ledger's outbox on real PostgreSQL and Kafka: rows the writer hands over are sent
from memory; any gap sends the publisher back to the table; nothing twice, nothing lost.

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
from trailpay.adapters import journal_store, ledger_entries, outbox
from trailpay.adapters.db import create_engine, raw
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


async def test_handed_over_rows_go_from_memory_and_a_gap_goes_to_the_table(own_engine, broker):
    engine = own_engine
    topic = f"test.outbox.{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [_record(uid("e"))])).appended[0].seq
    handoff = outbox.Handoff()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        first = await _commit_entries(engine, seq, topic, 3)
        assert first is not None and first.last_id == first.first_id + 2
        async with engine.begin() as conn:  # the cursor just before them
            await (await raw(conn)).execute(
                "INSERT INTO outbox_cursors (box, topic, last_id) VALUES ('ledger_entries', $1, $2)",
                topic, first.first_id - 1)
        handoff.put(first)
        before = _reads("handoff"), _reads("table")
        assert await outbox.publish_once(engine, producer, outbox.LEDGER_ENTRIES, topic, 100,
                                         handoff) == 3
        assert (_reads("handoff"), _reads("table")) == (before[0] + 1, before[1])

        missed = await _commit_entries(engine, seq, topic, 2)  # never handed over: a gap
        assert missed is not None
        after_gap = await _commit_entries(engine, seq, topic, 2)
        assert after_gap is not None
        handoff.put(after_gap)
        assert await outbox.publish_once(engine, producer, outbox.LEDGER_ENTRIES, topic, 100,
                                         handoff) >= 4
        assert _reads("table") == before[1] + 1
        # What the table path sent is not sent again from memory.
        assert await outbox.publish_once(engine, producer, outbox.LEDGER_ENTRIES, topic, 100,
                                         handoff) == 0
    finally:
        await producer.stop()

    got = await drain(broker, topic, 7, settle=True)
    ids = [orjson.loads(r.value)["entry_id"] for r in sorted(got, key=lambda r: (r.partition,
                                                                                r.offset))]
    sent = [m[1] for b in (first, missed, after_gap) for m in b.messages]
    assert len(got) == 7 and sorted(ids) == sorted(orjson.loads(v)["entry_id"] for v in sent)
