"""Speed machinery for folding a partner's history again: where it may stop early.

A late entry changes the partner's state from its place on. Folding the rest of the
history twice (as recorded, and with the late entry) shows what changed; but usually the
two states soon differ only in ways no later entry reads: amounts of money (pending lots,
the payable balance) and the books of customers that no later entry is about. Every
later entry then makes the same postings in both folds, so they need not be folded at
all: the new state is the recorded one with those books and amounts carried over.

The engine reads amounts of money in one place only: a clawback that takes more than
the customer's held money takes from pending lots and the payable balance (`Context.take`);
payout runs folded again pay what they recorded. Such entries are flagged when applied
(`reads_money`), and the fold may not stop before one while amounts differ.
Tested equal to folding everything: tests/unit/test_order_independence.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from trailpay.core.postings import PostingGroup
from trailpay.core.state import CustomerBook, PartnerState

Lots = dict[str, dict[date, Decimal]]


def reads_money(groups: Iterable[PostingGroup]) -> bool:
    """Whether an entry's postings took money from pending lots or the payable balance
    by a clawback (the one place where amounts decide what an entry posts)."""
    for g in groups:
        if g.explanation.rule_kind == "clawback":
            for leg in g.legs:
                if leg.bucket in ("pending", "payable") and leg.amount.amount < 0:
                    return True
    return False


@dataclass(slots=True)
class Difference:
    """How a state folded with a late entry differs from the recorded one, where it may stop."""

    books: dict[str, CustomerBook]  # customers whose books differ, as they are now
    pending: Lots
    payable: dict[str, Decimal]
    changes: Lots

    @property
    def money(self) -> bool:
        return bool(self.pending or self.payable or self.changes)


def _lots_delta(now: Lots, was: Lots) -> Lots:
    out: Lots = {}
    for c in now.keys() | was.keys():
        a, b = now.get(c, {}), was.get(c, {})
        if a is b or a == b:
            continue
        d = {day: a.get(day, 0) - b.get(day, 0) for day in a.keys() | b.keys()}
        d = {day: v for day, v in d.items() if v}
        if d:
            out[c] = d  # type: ignore[assignment]
    return out


def difference(now: PartnerState, was: PartnerState,
               among: Iterable[str] | None = None) -> Difference | None:
    """The difference, when it is only books and amounts; None when anything else differs
    (payouts, disputes, the last run, co-marketing, or a book in a way the partner's other
    customers would feel: its ARR, share, activity, currency or vesting deadline).
    `among`: the only customers whose books may differ (those put since the two folds
    parted, PartnerState.puts); without it, every book is compared."""
    if (now.last_run != was.last_run or now.disputes != was.disputes
            or now.comarketing != was.comarketing or now.payouts != was.payouts):
        return None
    books: dict[str, CustomerBook] = {}
    a, b = now.customers, was.customers
    if a is not b:
        if len(a) != len(b):
            return None
        for cid in (a if among is None else among):
            book, old = a.get(cid), b.get(cid)
            if old is book:
                continue
            if old is None or book is None or not _same_outside(book, old):
                return None
            if book != old:
                books[cid] = book
    payable = {c: now.payable.get(c, 0) - was.payable.get(c, 0)
               for c in now.payable.keys() | was.payable.keys()}
    if now.pending.keys() != was.pending.keys() or now.payable.keys() != was.payable.keys():
        return None  # (a currency's first money: rare, and not worth carrying over)
    return Difference(books, _lots_delta(now.pending, was.pending),
                      {c: v for c, v in payable.items() if v},  # type: ignore[misc]
                      _lots_delta(now.payable_changes, was.payable_changes))


def _same_outside(a: CustomerBook, b: CustomerBook) -> bool:
    """Equal in everything other customers' entries can see: the volume, and held money
    (another customer's entry forfeits it when its deadline passes)."""
    return (a.arr == b.arr and a.share == b.share and a.active == b.active
            and a.currency == b.currency and a.held == b.held
            and a.vest_deadline == b.vest_deadline)


def carried(state: PartnerState, diff: Difference, day: date | None) -> PartnerState:
    """`state` (from the recorded fold) with the difference carried over, matured to `day`
    as the fold would have matured it."""
    s = state.copy()
    for book in diff.books.values():
        s.put(book)
    for c, lots in diff.pending.items():
        for due, amount in lots.items():
            s.add_pending(c, due, amount)
        s.own_lots(c)  # (add_pending keeps zero lots: drop them, as the fold would)
        for due in [d for d, v in s.pending[c].items() if not v]:
            del s.pending[c][due]
    for c, amount in diff.payable.items():
        s.adjust_payable(c, amount)
    for c, days in diff.changes.items():
        for d, amount in days.items():
            s.adjust_payable_change(c, d, amount)
    if day is not None:
        s.mature(day)
    if s.last_run is not None:
        s.forget_payable_changes(s.last_run)
    return s
