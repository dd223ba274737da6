"""Payout and dispute projections, and finding the partner of a payout confirmation.

The accrual service writes the `payouts` and `disputes` projections (and queues
payout.requested in the outbox) in the transaction that writes the postings. The
ledger reads `payouts` to attribute an ERP's payout.confirmed / payout.failed that
does not name its partner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay import metrics
from trailpay.adapters import outbox
from trailpay.adapters.cloudevents import Envelope
from trailpay.adapters.db import raw
from trailpay.core.facts import (
    DisputeOpened, DisputeResolved, PayoutConfirmed, PayoutFailed, PayoutRunRequested,
)
from trailpay.core.journal import LedgerEntry
from trailpay.core.money import round_money
from trailpay.core.effects import (
    DISPUTE_OPENED, DISPUTE_RESOLVED, PAYOUT_CREATED, PAYOUT_SETTLED, Effect,
)
from trailpay.core.state import Payout

M = TypeVar("M")
CONFIRMATIONS = (PayoutConfirmed, PayoutFailed)


# --- ledger: attribution -------------------------------------------------------------------

async def attribute_confirmations(
    conn: AsyncConnection, items: list[tuple[M, Envelope]],
) -> tuple[list[tuple[M, Envelope]], list[tuple[M, Envelope, str, str]]]:
    """Give each payout confirmation the partner of its payout.

    Returns the items (confirmations completed with partner_id and key) and the refused
    ones as (item, envelope, reason, field): an unknown payout_id, or a partner_id that
    is not the payout's partner.
    """
    ids = {e.fact.payout_id for _, e in items if isinstance(e.fact, CONFIRMATIONS)}
    if not ids:
        return items, []
    pg = await raw(conn)
    rows = await pg.fetch("SELECT payout_id, partner_id FROM payouts "
                          "WHERE payout_id = ANY($1::text[])", sorted(ids))
    owner = {r[0]: r[1] for r in rows}
    kept: list[tuple[M, Envelope]] = []
    refused: list[tuple[M, Envelope, str, str]] = []
    for msg, env in items:
        fact = env.fact
        if not isinstance(fact, CONFIRMATIONS):
            kept.append((msg, env))
            continue
        partner = owner.get(fact.payout_id)
        if partner is None:
            refused.append((msg, env, f"unknown payout: no payout {fact.payout_id!r}",
                            "data.payout_id"))
        elif fact.partner_id and fact.partner_id != partner:
            refused.append((msg, env, f"wrong partner: payout {fact.payout_id!r} belongs to "
                            f"partner {partner!r}, not {fact.partner_id!r}", "data.partner_id"))
        else:
            kept.append((msg, replace(env, fact=replace(fact, partner_id=partner), key=partner)))
    return kept, refused


# --- accrual: projections ------------------------------------------------------------------

@dataclass
class Changes:
    """What one accrual batch changed in payouts and disputes, in entry order."""

    created: list[tuple[LedgerEntry, Payout]] = field(default_factory=list)
    settled: list[tuple[LedgerEntry, Payout]] = field(default_factory=list)
    opened: list[LedgerEntry] = field(default_factory=list)
    resolved: list[tuple[LedgerEntry, str | None]] = field(default_factory=list)

    def note(self, effects: Iterable[Effect]) -> None:
        """Record what the engine said applied entries did to payouts and disputes."""
        for x in effects:
            if x.kind == PAYOUT_CREATED:
                self.created.append((x.entry, x.payout))
            elif x.kind == PAYOUT_SETTLED:
                self.settled.append((x.entry, x.payout))
            elif x.kind == DISPUTE_OPENED:
                self.opened.append(x.entry)
            elif x.kind == DISPUTE_RESOLVED:
                self.resolved.append((x.entry, x.group_id))

    def __bool__(self) -> bool:
        return bool(self.created or self.settled or self.opened or self.resolved)


def _requested(entry: LedgerEntry, p: Payout, payment: Any) -> dict[str, Any]:
    """payout.requested on trailpay.payouts: a CloudEvent the ERP can act on."""
    fact = entry.fact
    assert isinstance(fact, PayoutRunRequested)
    return {"specversion": "1.0", "id": f"{p.payout_id}:requested", "source": "trailpay.accrual",
            "type": "payout.requested", "time": entry.time.isoformat(),
            "datacontenttype": "application/json",
            "data": {"payout_id": p.payout_id, "run_id": fact.run_id, "as_of": fact.as_of.isoformat(),
                     "partner_id": entry.partner_id, "currency": p.currency,
                     "amount": f"{round_money(p.amount, p.currency):f}", "payment": payment}}


def observe(changes: Changes) -> None:
    """Count what a committed batch did to payouts and disputes (Prometheus)."""
    for _, p in changes.created:
        metrics.PAYOUTS.labels("in_payout", p.currency).inc()
    for _, p in changes.settled:
        metrics.PAYOUTS.labels(p.status, p.currency).inc()
    if changes.opened:
        metrics.DISPUTES.labels("opened").inc(len(changes.opened))
    if changes.resolved:
        metrics.DISPUTES.labels("resolved").inc(len(changes.resolved))


async def write(conn: AsyncConnection, changes: Changes, payouts_topic: str) -> int:
    """Apply the changes to the projections; returns the number of messages queued."""
    if not changes:
        return 0
    pg = await raw(conn)
    if changes.created:
        rows = []
        for e, p in changes.created:
            fact = e.fact
            assert isinstance(fact, PayoutRunRequested)
            rows.append((p.payout_id, fact.run_id, e.partner_id, p.currency, p.amount,
                         fact.as_of, p.status, e.journal_seq))
        await pg.executemany(
            "INSERT INTO payouts (payout_id, run_id, partner_id, currency, amount, as_of, status, "
            "journal_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (payout_id) DO NOTHING", rows)
        partners = sorted({e.partner_id for e, _ in changes.created})
        payment = {r[0]: orjson.loads(r[1]) if r[1] else None for r in await pg.fetch(
            "SELECT partner_id, payment::text FROM partners WHERE partner_id = ANY($1::text[])",
            partners)}
        await outbox.write(conn, payouts_topic, [
            (e.partner_id, _requested(e, p, payment.get(e.partner_id)))
            for e, p in changes.created])
    if changes.settled:
        await pg.executemany(
            "UPDATE payouts SET status = $2, reference = $3, settled_seq = $4, settled_at = $5 "
            "WHERE payout_id = $1",
            [(p.payout_id, p.status, p.reference, e.journal_seq, e.time)
             for e, p in changes.settled])
    if changes.opened:
        rows = []
        for e in changes.opened:
            f = e.fact
            assert isinstance(f, DisputeOpened)
            rows.append((f.dispute_id, e.partner_id, f.posting_id, f.reason, f.opened_by,
                         e.journal_seq, e.time))
        await pg.executemany(
            "INSERT INTO disputes (dispute_id, partner_id, posting_id, reason, opened_by, status, "
            "opened_seq, opened_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) "
            "ON CONFLICT (dispute_id) DO NOTHING", rows)
    if changes.resolved:
        rows = []
        for e, posting in changes.resolved:
            f = e.fact
            assert isinstance(f, DisputeResolved)
            adjustment = None
            if f.adjustment_amount is not None:
                adjustment = orjson.dumps({
                    "currency": f.adjustment_currency,
                    "amount": f"{round_money(f.adjustment_amount, f.adjustment_currency):f}",
                    "reason": f.adjustment_reason or None, "posting_id": posting}).decode()
            rows.append((f.dispute_id, f.outcome, e.journal_seq, e.time, f.resolved_by,
                         adjustment))
        await pg.executemany(
            "UPDATE disputes SET status = $2, resolved_seq = $3, resolved_at = $4, "
            "resolved_by = $5, adjustment = $6::jsonb WHERE dispute_id = $1 AND status = 'open'",
            rows)
    return len(changes.created)
