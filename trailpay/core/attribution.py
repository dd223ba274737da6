"""Attribution: which partners a fact belongs to, and with what share.

A deal.closed names its partners and shares; every later fact about that
customer goes to the same partners with the same shares. A customer fact that
arrives before its deal is parked (None) and attributed when the deal arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from trailpay.core.facts import DealClosed, Fact, PartnerShare, fact_from_data, fact_to_data
from trailpay.core.frozen import maker
from trailpay.core.journal import LedgerEntry


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    deal_id: str
    currency: str
    partners: tuple[PartnerShare, ...]


def customer_after(fact: Fact, known: Customer | None) -> Customer | None:
    """The customer record once this fact is applied (the first new deal defines it)."""
    if isinstance(fact, DealClosed) and (known is None or fact.kind == "new"):
        return Customer(fact.customer_id, fact.deal_id, fact.currency, fact.partners)
    return known


def partners_of(fact: Fact, customer: Customer | None) -> tuple[PartnerShare, ...] | None:
    """Who gets this fact; None means park it until the customer's deal arrives."""
    if fact.partner_level:
        return (PartnerShare(getattr(fact, "partner_id"), "owner", Decimal(1)),)
    if isinstance(fact, DealClosed):
        return fact.partners
    if customer is None:
        return None
    return customer.partners


# LedgerEntry(...) without the frozen dataclass's per-field object.__setattr__ (frozen.py).
make_entry = maker(LedgerEntry)


def entries_for(seq: int, event_id: str, source: str, time: datetime, fact: Fact,
                shares: tuple[PartnerShare, ...], deal_id: str | None,
                recorded_at: datetime | None = None) -> list[LedgerEntry]:
    customer_id = None if fact.partner_level else getattr(fact, "customer_id", None)
    deal_id = getattr(fact, "deal_id", None) or deal_id
    return [make_entry(f"{seq}:{p.partner_id}", seq, event_id, source, time, p.partner_id,
                       customer_id, deal_id, p.share, p.role, fact, recorded_at)
            for p in shares]


def entry_to_dict(e: LedgerEntry) -> dict[str, Any]:
    return {
        "entry_id": e.entry_id, "journal_seq": e.journal_seq, "event_id": e.event_id,
        "source": e.source, "time": e.time.isoformat(), "partner_id": e.partner_id,
        "customer_id": e.customer_id, "deal_id": e.deal_id, "share": str(e.share),
        "role": e.role, "type": e.fact.type, "data": fact_to_data(e.fact),
        "recorded_at": e.recorded_at.isoformat() if e.recorded_at else None,
    }


def entry_from_dict(d: dict[str, Any]) -> LedgerEntry:
    return make_entry(
        d["entry_id"], d["journal_seq"], d["event_id"], d["source"],
        datetime.fromisoformat(d["time"]), d["partner_id"], d["customer_id"], d["deal_id"],
        Decimal(d["share"]), d["role"], fact_from_data(d["type"], d["data"]),
        datetime.fromisoformat(d["recorded_at"]) if d.get("recorded_at") else None)
