"""Customers' attribution (`customers`) and the events parked until their deal (`parked`).

A customer-level fact is attributed to the partners of the customer's deal. The ledger
attributes a batch's freshly journaled events here, in journal order, in the caller's
transaction: it loads the customers those events name, takes out of `parked` the events
earlier batches parked for the customers whose deal is in this batch, attributes
(core.attribution decides), then upserts the customers the batch's deals defined or
changed and parks the events that still have no deal. One statement for each of those
steps, whatever the batch's size.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.cloudevents import Envelope, decode_kafka
from trailpay.adapters.db import raw
from trailpay.core.attribution import Customer, customer_after, entries_for, partners_of
from trailpay.core.facts import DealClosed, PartnerShare
from trailpay.core.journal import LedgerEntry


async def load(conn: AsyncConnection, ids: set[str]) -> dict[str, Customer]:
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


async def save(conn: AsyncConnection, saved: dict[str, tuple[Customer, int]]) -> None:
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


async def unpark(conn: AsyncConnection, customer_ids: set[str]
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


async def park(conn: AsyncConnection, parked: dict[str, list[tuple[int, Envelope]]]) -> int:
    """Park events (by journal seq) until their customer's deal; returns how many."""
    if not parked:
        return 0
    pg = await raw(conn)
    rows = [(seq, cid) for cid, items in parked.items() for seq, _ in items]
    await pg.executemany("INSERT INTO parked (journal_seq, customer_id) VALUES ($1, $2)", rows)
    return len(rows)


async def attribute(conn: AsyncConnection, appended: list[tuple[int, Envelope]]
                    ) -> tuple[list[LedgerEntry], int]:
    """The ledger entries of freshly journaled events (seq order), and how many events
    were parked: customer facts before their deal wait in `parked`, and a deal releases
    the events waiting for its customer, from earlier batches and from this one."""
    customers = await load(
        conn, {e.fact.customer_id for _, e in appended if not e.fact.partner_level})
    parked_now: dict[str, list[tuple[int, Envelope]]] = defaultdict(list)
    entries: list[LedgerEntry] = []
    recorded_at = datetime.now(UTC)  # when trailpay recorded these entries (timeline.py)

    def attribute_one(seq: int, env: Envelope) -> None:
        cust = None if env.fact.partner_level else customers.get(env.fact.customer_id)
        shares = partners_of(env.fact, cust)
        if shares is None:
            parked_now[env.fact.customer_id].append((seq, env))
            return
        entries.extend(entries_for(seq, env.id, env.source, env.time, env.fact, shares,
                                   cust.deal_id if cust else None, recorded_at))

    # Events parked by earlier batches for the customers whose deal is in this one.
    parked_before = await unpark(
        conn, {e.fact.customer_id for _, e in appended if isinstance(e.fact, DealClosed)})
    saved: dict[str, tuple[Customer, int]] = {}
    for seq, env in appended:
        attribute_one(seq, env)
        if isinstance(env.fact, DealClosed):
            cid = env.fact.customer_id
            after = customer_after(env.fact, customers.get(cid))
            if after is not None and after != customers.get(cid):
                customers[cid] = after
                saved[cid] = (after, seq)
            waiting = parked_before.pop(cid, []) + parked_now.pop(cid, [])
            for wseq, wenv in sorted(waiting, key=lambda t: t[0]):
                attribute_one(wseq, wenv)
    await save(conn, saved)
    return entries, await park(conn, parked_now)
