"""What the books must say: the generated events folded through the pure core directly.

No database, no Kafka: CloudEvents `data` becomes facts (core.facts), facts are
attributed to partners (core.attribution) and folded by `accrue` in the journal
defined order (core.fold.fold_partners). The live `balances` table must equal this to
the cent, whatever order the live run received the events in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from trailpay.core.attribution import Customer, customer_after, entries_for, partners_of
from trailpay.core.facts import DealClosed, fact_from_data
from trailpay.core.fold import fold_partners
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Books
from trailpay.core.postings import BalanceKey, add_partner_legs


def attribute(events: Iterable[tuple[int, dict[str, Any]]]) -> list[LedgerEntry]:
    """(journal seq, CloudEvent) in journal order -> attributed entries, as the ledger makes them.

    The programme sends every customer's deal before its other facts, so nothing parks;
    a fact before its deal would be a broken programme, not a result.
    """
    customers: dict[str, Customer] = {}
    entries: list[LedgerEntry] = []
    for seq, ev in events:
        fact = fact_from_data(ev["type"], ev["data"])
        cust = None if fact.partner_level else customers.get(fact.customer_id)
        shares = partners_of(fact, cust)
        if shares is None:
            raise ValueError(f"event {ev['id']} about {fact.customer_id} precedes its deal")
        when = datetime.fromisoformat(ev["time"].upper())
        entries.extend(entries_for(seq, ev["id"], ev["source"], when, fact, shares,
                                   cust.deal_id if cust else None))
        if isinstance(fact, DealClosed):
            after = customer_after(fact, cust)
            if after is not None:
                customers[fact.customer_id] = after
    return entries


def fold(entries: Iterable[LedgerEntry], books: Books
         ) -> tuple[dict[BalanceKey, Decimal], int, int]:
    """(balances, applied, refused) of the defined fold (design §4): each partner's entries
    sorted by (event time, source, id), folded from nothing (core.fold.fold_partners)."""
    totals: dict[BalanceKey, Decimal] = {}
    applied = refused = 0
    for folded in fold_partners(entries, books).values():
        applied += folded.applied
        refused += len(folded.refused)
        add_partner_legs(totals, folded.groups)
    return totals, applied, refused
