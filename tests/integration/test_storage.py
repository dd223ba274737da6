"""The database enforces the books: append-only journal and postings, balanced
groups, a hash chain that exposes tampering, and models in step with migrations."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.integration.helpers import uid
from trailpay.adapters import journal_store
from trailpay.adapters.db import raw
from trailpay.adapters.journal_store import JournalRecord
from trailpay.adapters.tables import metadata

pytestmark = pytest.mark.integration


def _record(event_id: str, body: bytes = b'{"a":1}') -> JournalRecord:
    return JournalRecord("test.storage", event_id, "deal.closed", "C-1",
                         datetime(2026, 1, 1, tzinfo=UTC), body)


async def test_journal_refuses_update_and_delete(engine):
    stream = uid("stream")
    async with engine.begin() as conn:
        await journal_store.append(conn, stream, [_record(uid("e"))])
    for sql in ("UPDATE journal SET type = 'x' WHERE stream = $1",
                "DELETE FROM journal WHERE stream = $1"):
        async with engine.connect() as conn:
            pg = await raw(conn)
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
                await pg.execute(sql, stream)


async def test_postings_refuse_update_and_unbalanced_groups(engine):
    async with engine.connect() as conn:
        pg = await raw(conn)
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await pg.execute("UPDATE postings SET amount = 0")
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [_record(uid("e"))])).appended[0].seq
    async with engine.connect() as conn:
        pg = await raw(conn)
        with pytest.raises(asyncpg.exceptions.CheckViolationError, match="does not balance"):
            await pg.execute(
                "INSERT INTO postings (group_id, leg, entry_id, journal_seq, event_id, event_type, "
                "effective_at, partner_id, account, bucket, currency, amount, rule_id, rule_kind, "
                "explanation) VALUES ($1, 0, 'e', $2, 'e', 't', now(), 'P', 'partner:P', "
                "'pending', 'USD', 10, 'r', 'upfront', 'x')", uid("g"), seq)


async def test_postings_and_entries_must_name_a_journal_row(engine):
    """Checked once per statement (a set-based foreign key), for COPY as for INSERT."""
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [_record(uid("e"))])).appended[0].seq
    missing = seq + 10_000_000
    group = uid("g")
    legs = [(group, n, "e", s, "e", "t", datetime(2026, 1, 1, tzinfo=UTC), "P", acct, "pending",
             "USD", amount, "r", "upfront", "x")
            for n, (s, acct, amount) in enumerate([(seq, "partner:P", 10),
                                                   (missing, "company:commissions", -10)])]
    columns = ("group_id", "leg", "entry_id", "journal_seq", "event_id", "event_type",
               "effective_at", "partner_id", "account", "bucket", "currency", "amount", "rule_id",
               "rule_kind", "explanation")
    async with engine.connect() as conn:
        pg = await raw(conn)
        with pytest.raises(asyncpg.exceptions.ForeignKeyViolationError, match=str(missing)):
            await pg.copy_records_to_table("postings", records=legs, columns=columns)
    async with engine.connect() as conn:
        pg = await raw(conn)
        with pytest.raises(asyncpg.exceptions.ForeignKeyViolationError, match=str(missing)):
            await pg.execute("INSERT INTO ledger_entries (entry_id, journal_seq, partner_id, topic, "
                             "payload) VALUES ($1, $2, 'P', 't', '{}')", uid("entry"), missing)
    async with engine.connect() as conn:  # naming a journaled seq they go in (rolled back)
        await conn.begin()
        pg = await raw(conn)
        fixed = [leg[:3] + (seq,) + leg[4:] for leg in legs]
        await pg.copy_records_to_table("postings", records=fixed, columns=columns)
        await pg.execute("INSERT INTO ledger_entries (entry_id, journal_seq, partner_id, topic, "
                         "payload) VALUES ($1, $2, 'P', 't', '{}')", uid("entry"), seq)
        await conn.rollback()
    async with engine.connect() as conn:
        pg = await raw(conn)
        assert not await pg.fetchval("SELECT count(*) FROM ledger_entries WHERE topic = 't'")


async def test_append_is_idempotent_and_reports_conflicts(engine):
    eid = uid("e")
    async with engine.begin() as conn:
        first = await journal_store.append(conn, uid("stream"), [_record(eid)])
    async with engine.begin() as conn:
        again = await journal_store.append(conn, uid("stream"), [_record(eid), _record(eid, b'{"a":2}')])
    assert len(first.appended) == 1
    assert not again.appended and len(again.duplicates) == 1 and len(again.conflicts) == 1
    assert again.seq_of[("test.storage", eid)] == first.appended[0].seq


async def test_a_batch_with_a_journaled_event_appends_the_rest_with_an_unbroken_chain(engine):
    """The optimistic COPY fails on the journaled one; the batch is classified and written
    again from the savepoint: same positions, one chain, nothing lost or doubled."""
    stream, old = uid("stream"), uid("e")
    async with engine.begin() as conn:
        first = await journal_store.append(conn, stream, [_record(old)])
    fresh = [uid("e"), uid("e")]
    async with engine.begin() as conn:
        mixed = await journal_store.append(
            conn, stream, [_record(fresh[0]), _record(old), _record(fresh[1]),
                           _record(old, b'{"a":2}')])
    assert [a.record.event_id for a in mixed.appended] == fresh
    assert len(mixed.duplicates) == 1 and len(mixed.conflicts) == 1
    assert mixed.seq_of[("test.storage", old)] == first.appended[0].seq
    async with engine.connect() as conn:
        pg = await raw(conn)
        positions = [r[0] for r in await pg.fetch(
            "SELECT stream_pos FROM journal WHERE stream = $1 ORDER BY stream_pos", stream)]
        assert positions == [1, 2, 3]
        assert (await journal_store.verify(conn))[stream] is None


async def test_hash_chain_exposes_tampering(engine):
    stream = uid("stream")
    async with engine.begin() as conn:
        await journal_store.append(conn, stream, [_record(uid("e")) for _ in range(3)])
    async with engine.connect() as conn:
        assert (await journal_store.verify(conn))[stream] is None
    # Tampering needs a superuser to lift the trigger first; the chain still tells.
    async with engine.begin() as conn:
        pg = await raw(conn)
        await pg.execute("ALTER TABLE journal DISABLE TRIGGER journal_append_only")
        await pg.execute("UPDATE journal SET body = '{\"a\":999}' WHERE stream = $1 AND stream_pos = 2",
                         stream)
        await pg.execute("ALTER TABLE journal ENABLE TRIGGER journal_append_only")
    async with engine.connect() as conn:
        assert (await journal_store.verify(conn))[stream] == 2


async def test_models_match_migrations(engine):
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    relevant = [d for d in diff if not (isinstance(d, tuple) and d[0] in ("remove_index", "add_index", "remove_fk", "add_fk",
                                                                         "remove_constraint",
                                                                         "add_constraint"))]
    assert relevant == [], relevant


async def test_collations_match_migrations(engine):
    """Alembic's comparison does not look at collations: ids and codes must be "C" in both."""
    async with engine.connect() as conn:
        pg = await raw(conn)
        rows = await pg.fetch("SELECT table_name, column_name, collation_name "
                              "FROM information_schema.columns WHERE table_schema = 'public' "
                              "AND data_type IN ('text', 'character')")
    migrated = {(r[0], r[1]): r[2] for r in rows}
    declared = {(t.name, c.name): getattr(c.type, "collation", None)
                for t in metadata.tables.values() for c in t.columns
                if (t.name, c.name) in migrated}
    assert declared.keys() == migrated.keys()
    assert declared == migrated
    assert sum(v == "C" for v in migrated.values()) >= 70  # what 0013 set


async def test_driver_level_work_stays_inside_the_callers_transaction(engine):
    """raw() must send BEGIN first: a batch that fails half-way leaves no trace."""
    marker = uid("half-applied")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with engine.begin() as conn:
            pg = await raw(conn)
            await pg.execute("INSERT INTO dead_letters (stage, reason, payload) VALUES "
                             "('test', $1, '{}')", marker)
            raise Boom
    async with engine.connect() as conn:
        pg = await raw(conn)
        assert await pg.fetchval("SELECT count(*) FROM dead_letters WHERE reason = $1", marker) == 0
