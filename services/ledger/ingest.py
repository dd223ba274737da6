"""The ledger's batch handler: validate, journal, attribute, outbox — one transaction.

Everything a batch does to the database commits together, so a consumer
killed at any instant either did all of it or none of it; a redelivered batch
finds its events in the journal and only re-acknowledges them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay import metrics
from trailpay.adapters import dead_letters, journal_store, outbox, payout_store
from trailpay.adapters.cloudevents import Envelope, EventRejected, decode_kafka
from trailpay.adapters.db import raw
from trailpay.adapters.dead_letters import DeadLetter
from trailpay.adapters.fastjson import entry_json
from trailpay.adapters.journal_store import JournalRecord, make_record
from trailpay.core.attribution import (
    Customer, customer_after, entries_for, partners_of,
)
from trailpay.core.facts import DealClosed, PartnerShare
from trailpay.core.frozen import maker
from trailpay.core.journal import LedgerEntry


@dataclass(frozen=True, slots=True)
class Inbound:
    """One Kafka record as received (or an HTTP-posted event on its way)."""

    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int


make_inbound = maker(Inbound)  # one per Kafka record: without the frozen __init__'s cost


@dataclass
class BatchReport:
    appended: int = 0
    duplicates: int = 0
    entries: int = 0
    parked: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    committed: outbox.Committed | None = None  # the entries, for this process's publisher


def to_record(env: Envelope) -> JournalRecord:
    return make_record(env.source, env.id, env.type, env.key, env.time, env.raw)


def _dead(msg: Inbound, reason: str, fld: str | None, env: Envelope | None = None) -> DeadLetter:
    return DeadLetter(
        stage="ledger", reason=reason, field=fld, payload=msg.value.decode(errors="replace"),
        source=env.source if env else None, event_id=env.id if env else None,
        type=env.type if env else None, topic=msg.topic, partition=msg.partition,
        offset=msg.offset)


async def _known_partners(conn: AsyncConnection, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    pg = await raw(conn)
    rows = await pg.fetch("SELECT partner_id FROM partners WHERE partner_id = ANY($1::text[])",
                          list(ids))
    return {r[0] for r in rows}


def _named_partners(env: Envelope) -> list[tuple[str, str]]:
    """(field path, partner_id) for every partner an event names."""
    if isinstance(env.fact, DealClosed):
        return [(f"data.partners[{i}].partner_id", p.partner_id)
                for i, p in enumerate(env.fact.partners)]
    if env.fact.partner_level and getattr(env.fact, "partner_id", ""):
        return [("data.partner_id", env.fact.partner_id)]
    return []


async def _load_customers(conn: AsyncConnection, ids: set[str]) -> dict[str, Customer]:
    if not ids:
        return {}
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT customer_id, deal_id, currency, partners::text FROM customers "
        "WHERE customer_id = ANY($1::text[])", list(ids))
    out = {}
    for r in rows:
        shares = tuple(PartnerShare(p["partner_id"], p["role"], Decimal(p["share"]))
                       for p in orjson.loads(r[3]))
        out[r[0]] = Customer(r[0], r[1], r[2], shares)
    return out


async def _save_customers(conn: AsyncConnection, saved: dict[str, tuple[Customer, int]]) -> None:
    """Upsert the customers a batch's deals defined or changed: one statement per batch."""
    if not saved:
        return
    pg = await raw(conn)
    ids = sorted(saved)
    await pg.execute(
        "INSERT INTO customers (customer_id, deal_id, currency, partners, journal_seq) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[]) "
        "ON CONFLICT (customer_id) DO UPDATE SET deal_id = EXCLUDED.deal_id, "
        "currency = EXCLUDED.currency, partners = EXCLUDED.partners, "
        "journal_seq = EXCLUDED.journal_seq",
        ids, [saved[i][0].deal_id for i in ids], [saved[i][0].currency for i in ids],
        [orjson.dumps([{"partner_id": p.partner_id, "role": p.role, "share": str(p.share)}
                       for p in saved[i][0].partners]).decode() for i in ids],
        [saved[i][1] for i in ids])


async def _unpark(conn: AsyncConnection, customer_ids: set[str]
                  ) -> dict[str, list[tuple[int, Envelope]]]:
    """Take the parked events of these customers out of `parked`: one statement per batch."""
    if not customer_ids:
        return {}
    pg = await raw(conn)
    rows = await pg.fetch(
        "DELETE FROM parked p USING journal j WHERE p.customer_id = ANY($1::text[]) "
        "AND j.seq = p.journal_seq RETURNING p.customer_id, j.seq, j.body", sorted(customer_ids))
    out: dict[str, list[tuple[int, Envelope]]] = defaultdict(list)
    for r in rows:
        out[r[0]].append((r[1], decode_kafka(r[2].encode(), [])))
    return out


ENTRY_COLUMNS = ("id", "entry_id", "journal_seq", "partner_id", "topic", "payload")


async def _write_entries(conn: AsyncConnection, entries: list[LedgerEntry], topic: str
                         ) -> outbox.Committed | None:
    """COPY the batch's entries into the outbox (twice the rows/s of INSERT ... unnest here).
    An entry is written once: its event was journaled in this same transaction (a
    redelivered event is a duplicate and makes no entries), and its id is unique per
    (event, partner). A repeat would be a bug, and the unique key fails the batch loudly.

    The ids are drawn first, under the outbox's lock, so that the rows can be handed to
    this process's publisher once committed (`outbox.Handoff`)."""
    if not entries:
        return None
    pg = await raw(conn)
    await outbox.lock_for_append(pg, outbox.LEDGER_ENTRIES)
    ids = await pg.fetchval("SELECT array(SELECT nextval('ledger_entries_id_seq') "
                            "FROM generate_series(1, $1))", len(entries))
    payloads = [entry_json(e) for e in entries]  # bytes, as Kafka takes them
    await pg.copy_records_to_table("ledger_entries", columns=ENTRY_COLUMNS, records=[
        (i, e.entry_id, e.journal_seq, e.partner_id, topic, p.decode())
        for i, e, p in zip(ids, entries, payloads, strict=True)])
    if ids[-1] - ids[0] + 1 != len(ids):  # another writer took ids outside the lock
        return None
    return outbox.Committed(ids[0], topic, [(e.partner_id.encode(), p)
                                           for e, p in zip(entries, payloads, strict=True)])


async def _attribute(conn: AsyncConnection, appended: list[tuple[int, Envelope]],
                     report: BatchReport) -> list[LedgerEntry]:
    customers = await _load_customers(
        conn, {e.fact.customer_id for _, e in appended if not e.fact.partner_level})
    parked_now: dict[str, list[tuple[int, Envelope]]] = defaultdict(list)
    entries: list[LedgerEntry] = []

    def attribute(seq: int, env: Envelope) -> None:
        cust = None if env.fact.partner_level else customers.get(env.fact.customer_id)
        shares = partners_of(env.fact, cust)
        if shares is None:
            parked_now[env.fact.customer_id].append((seq, env))
            return
        entries.extend(entries_for(seq, env.id, env.source, env.time, env.fact, shares,
                                   cust.deal_id if cust else None))

    # Events parked by earlier batches for the customers whose deal is in this one.
    parked_before = await _unpark(
        conn, {e.fact.customer_id for _, e in appended if isinstance(e.fact, DealClosed)})
    saved: dict[str, tuple[Customer, int]] = {}
    for seq, env in appended:
        attribute(seq, env)
        if isinstance(env.fact, DealClosed):
            cid = env.fact.customer_id
            after = customer_after(env.fact, customers.get(cid))
            if after is not None and after != customers.get(cid):
                customers[cid] = after
                saved[cid] = (after, seq)
            waiting = parked_before.pop(cid, []) + parked_now.pop(cid, [])
            for wseq, wenv in sorted(waiting, key=lambda t: t[0]):
                attribute(wseq, wenv)
    await _save_customers(conn, saved)
    if parked_now:
        pg = await raw(conn)
        rows = [(seq, cid) for cid, items in parked_now.items() for seq, _ in items]
        await pg.executemany("INSERT INTO parked (journal_seq, customer_id) VALUES ($1, $2)", rows)
        report.parked += len(rows)
    return entries


async def handle_batch(engine: AsyncEngine, batch: list[Inbound], ledger_topic: str) -> BatchReport:
    """Journal and attribute one batch; returns what happened (dead letters to publish)."""
    report = BatchReport()
    decoded: list[tuple[Inbound, Envelope]] = []
    for msg in batch:
        try:
            env = decode_kafka(msg.value, msg.headers)
        except EventRejected as exc:
            report.dead.append(_dead(msg, f"invalid: {exc.reason}", exc.field))
            metrics.EVENTS_REJECTED.labels("kafka", "invalid").inc()
            continue
        decoded.append((msg, env))
    for type_, n in Counter(env.type for _, env in decoded).items():
        metrics.EVENTS_RECEIVED.labels("kafka", type_).inc(n)

    async with engine.begin() as conn:
        # payout.confirmed / payout.failed belong to the partner of their payout.
        decoded, refused = await payout_store.attribute_confirmations(conn, decoded)
        report.dead.extend(_dead(m, reason, f, env) for m, env, reason, f in refused)
        known = await _known_partners(conn, {pid for _, e in decoded for _, pid in _named_partners(e)})
        by_stream: dict[str, list[tuple[Inbound, Envelope]]] = defaultdict(list)
        for msg, env in decoded:
            unknown = [(f, pid) for f, pid in _named_partners(env) if pid not in known]
            if unknown:
                f, pid = unknown[0]
                report.dead.append(_dead(msg, f"unknown partner: {pid!r} is not enrolled", f, env))
                continue
            by_stream[f"{msg.topic}/{msg.partition}"].append((msg, env))

        appended: list[tuple[int, Envelope]] = []
        for stream, items in by_stream.items():
            result = await journal_store.append(conn, stream, [to_record(e) for _, e in items])
            report.duplicates += len(result.duplicates)
            conflicting = {(r.source, r.event_id, r.hash) for r in result.conflicts}
            fresh = {a.record.body: a.seq for a in result.appended}
            for msg, env in items:
                if conflicting and (env.source, env.id, to_record(env).hash) in conflicting:
                    report.dead.append(_dead(
                        msg, "conflict: an event with this source and id was journaled with a "
                        "different body", "id", env))
                elif env.raw in fresh:
                    appended.append((fresh.pop(env.raw), env))
        appended.sort(key=lambda t: t[0])
        report.appended = len(appended)
        entries = await _attribute(conn, appended, report)
        committed = await _write_entries(conn, entries, ledger_topic)
        report.entries = len(entries)
        await dead_letters.record(conn, report.dead)
    report.committed = committed  # only now: the transaction has committed

    metrics.JOURNAL_DUPLICATES.inc(report.duplicates)
    for type_, n in Counter(env.type for _, env in appended).items():
        metrics.JOURNAL_APPENDS.labels(type_).inc(n)
        metrics.EVENTS_ACCEPTED.labels("kafka", type_).inc(n)
    return report
