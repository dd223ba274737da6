"""The ledger's batch handler: decode, journal, attribute, publish (to the outbox) — one
transaction.

Everything a batch does to the database commits together, so a consumer
killed at any instant either did all of it or none of it; a redelivered batch
finds its events in the journal and only re-acknowledges them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from trailpay import metrics
from trailpay.adapters import (
    customers, dead_letters, journal_store, ledger_entries, outbox, payout_store, plan_store,
)
from trailpay.adapters.cloudevents import Envelope, EventRejected, decode_kafka
from trailpay.adapters.db import Connection, Engine
from trailpay.adapters.dead_letters import DeadLetter
from trailpay.adapters.journal_store import JournalRecord, make_record
from trailpay.core.facts import DealClosed
from trailpay.core.frozen import maker
from trailpay.core.journal import sort_key


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
        offset=msg.offset, raw=msg.value)


def _named_partners(env: Envelope) -> list[tuple[str, str]]:
    """(field path, partner_id) for every partner an event names."""
    if isinstance(env.fact, DealClosed):
        return [(f"data.partners[{i}].partner_id", p.partner_id)
                for i, p in enumerate(env.fact.partners)]
    if env.fact.partner_level and getattr(env.fact, "partner_id", ""):
        return [("data.partner_id", env.fact.partner_id)]
    return []


def _decode(batch: list[Inbound], report: BatchReport) -> list[tuple[Inbound, Envelope]]:
    """The batch's events; what does not decode goes to the dead letters."""
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
    return decoded


async def _admit(conn: Connection, decoded: list[tuple[Inbound, Envelope]], report: BatchReport
                 ) -> dict[str, list[tuple[Inbound, Envelope]]]:
    """The events to journal, by journal stream: payout confirmations given the partner of
    their payout; an event naming a partner that is not enrolled goes to the dead letters."""
    # payout.confirmed / payout.failed belong to the partner of their payout.
    decoded, refused = await payout_store.attribute_confirmations(conn, decoded)
    report.dead.extend(_dead(m, reason, f, env) for m, env, reason, f in refused)
    known = await plan_store.known_partners(
        conn, {pid for _, e in decoded for _, pid in _named_partners(e)})
    by_stream: dict[str, list[tuple[Inbound, Envelope]]] = defaultdict(list)
    for msg, env in decoded:
        unknown = [(f, pid) for f, pid in _named_partners(env) if pid not in known]
        if unknown:
            f, pid = unknown[0]
            report.dead.append(_dead(msg, f"unknown partner: {pid!r} is not enrolled", f, env))
            continue
        by_stream[f"{msg.topic}/{msg.partition}"].append((msg, env))
    return by_stream


async def _journal(conn: Connection, by_stream: dict[str, list[tuple[Inbound, Envelope]]],
                   report: BatchReport) -> list[tuple[int, Envelope]]:
    """Append each stream's events; the fresh ones as (journal seq, event) in seq order.
    Duplicates are counted; a conflict (same source and id, other body) is dead-lettered."""
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
    return appended


async def handle_batch(engine: Engine, batch: list[Inbound], ledger_topic: str) -> BatchReport:
    """Journal and attribute one batch; returns what happened (dead letters to publish)."""
    report = BatchReport()
    decoded = _decode(batch, report)
    async with engine.begin() as conn:
        by_stream = await _admit(conn, decoded, report)
        appended = await _journal(conn, by_stream, report)
        entries, parked = await customers.attribute(conn, appended)
        # Published in the order design §4 defines (not stream by stream): an accrual that
        # takes part of this batch takes each partner's earliest entries, none late.
        entries.sort(key=sort_key)
        report.parked += parked
        committed = await ledger_entries.write(conn, entries, ledger_topic)
        report.entries = len(entries)
        await dead_letters.record(conn, report.dead)
    report.committed = committed  # only now: the transaction has committed

    metrics.JOURNAL_DUPLICATES.inc(report.duplicates)
    for type_, n in Counter(env.type for _, env in appended).items():
        metrics.JOURNAL_APPENDS.labels(type_).inc(n)
        metrics.EVENTS_ACCEPTED.labels("kafka", type_).inc(n)
    return report
