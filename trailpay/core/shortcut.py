"""Speed machinery for folding a partner's history again: where it may stop early.

A late entry changes the partner's state from its place on. Folding the rest of the
history twice (as recorded, and with the late entry) shows what changed; but usually the
two states soon differ only in ways no later entry reads: amounts of money (pending lots,
the payable balance), the books of customers that no later entry reads (usage facts
read nothing of their customer's book: core.timeline.BOOK_BLIND; a difference in the ARR
alone is carried over entries that read no ARR: ARR_KEEPING, ARR_SETTING), and the
partner's volume where no later tier multiplier changes. Every later entry then makes
the same postings in both folds, so they need not be folded at all: the new state is the
recorded one with those books and amounts carried over.

The engine reads amounts of money in one place only: a clawback that takes more than
the customer's held money takes from pending lots (`Context.take`), furthest from payment
first, and the rest from the payable balance, which it adds to without reading it; payout
runs folded again pay what they recorded. So a difference in the payable balance is never
read, and one in pending lots only by a take that goes down to a lot of the difference
not yet matured on its day. What each take read is recorded when it is applied
(`money_read`: its day, and per currency the earliest lot it took from, or that it went
on to payable), and the fold may not stop before one that the pending difference would
change (`money_change_at`).

Other customers' books are read in two places: the volume (attributed active ARR), which
renewals and expansions read to pick a tier multiplier (`Context.multiplier`, which
records each read), and held money, which any later entry dated after its vesting
deadline forfeits. So a book may differ in its ARR, share or activity (or be new: a late
deal) when moving the volume by the difference (`Difference.volume`) moves no later read
across a tier boundary (`tier_change_at`), and in held money only when no later entry is
dated after its deadline (carrying the book over would undo a forfeit).
Tested equal to folding everything: tests/unit/test_order_independence.py,
test_refold_volume.py (the volume), test_refold_money.py (takes and usage),
test_refold_arr.py (ARR differences).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal, Inexact, InvalidOperation

from trailpay.core.journal import LedgerEntry
from trailpay.core.postings import PostingGroup
from trailpay.core.rules.base import VolumeRead
from trailpay.core.state import EXACT, CustomerBook, PartnerState

Lots = dict[str, dict[date, Decimal]]
Volumes = dict[str, Decimal]  # per currency: attributed active ARR (now − was)
# Volumes are compared exactly (state.EXACT, as PartnerState.volume_value sums them);
# Inexact: no cut.


# What a clawback's take read of the pending lots (Context.take), per entry: the entry's day
# and, per currency it took from pending or payable, the earliest pending lot it took from,
# or None when it took from payable (then it went through every pending lot).
MoneyRead = tuple[date, tuple[tuple[str, date | None], ...]]


def money_read(groups: Iterable[PostingGroup], e: LedgerEntry) -> MoneyRead | None:
    """What an entry's postings read of the pending lots; None when they read none (no
    clawback took from pending lots or the payable balance: the one place where amounts
    decide what an entry posts).

    A take goes through the lots furthest from payment first and stops at the lot where
    the clawback is covered: lots due before that one are never looked at, nor lots that
    matured by the entry's day (they are payable, which a take adds to without reading).
    So a pending difference whose every lot is due by the entry's day or before the
    earliest lot taken from cannot change what it takes (money_change_at)."""
    takes: dict[str, date | None] | None = None
    for g in groups:
        if g.explanation.rule_kind != "clawback":
            continue
        for leg in g.legs:
            bucket = leg.bucket
            if (bucket == "pending" or bucket == "payable") and leg.amount.amount < 0:
                if takes is None:
                    takes = {}
                c = leg.amount.currency
                if bucket == "payable":
                    takes[c] = None
                elif c not in takes:
                    takes[c] = leg.available_on
                else:
                    floor = takes[c]
                    if floor is not None and leg.available_on is not None:
                        takes[c] = min(floor, leg.available_on)
    if takes is None:
        return None
    return e.time.astimezone(UTC).date(), tuple(sorted(takes.items()))


def money_change_at(reads: Sequence[MoneyRead | None], pending: Lots, start: int) -> int:
    """The last position, from `start` on, of an entry whose take would differ were the
    pending lots moved by `pending` (a Difference's); start - 1 when there is none. Only
    the latest lot of the difference per currency matters: if any lot of it is due after
    the entry's day and not before the earliest lot taken from, so is the latest."""
    latest = {c: max(lots) for c, lots in pending.items() if lots}
    for k in range(len(reads) - 1, start - 1, -1):
        read = reads[k]
        if read is not None:
            day, takes = read
            for c, floor in takes:
                d = latest.get(c)
                if d is not None and d > day and (floor is None or d >= floor):
                    return k
    return start - 1


@dataclass(slots=True)
class Difference:
    """How a state folded with a late entry differs from the recorded one, where it may stop."""

    books: dict[str, CustomerBook]  # customers whose books differ, as they are now
    pending: Lots
    payable: dict[str, Decimal]
    changes: Lots
    volume: Volumes  # what those books add to the volume, per currency (nonzero only)

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


def difference(now: PartnerState, was: PartnerState, among: Iterable[str] | None = None,
               until: date | None = None) -> Difference | None:
    """The difference, when it is only books and amounts; None when anything else differs
    (payouts, disputes, the last run, co-marketing) or a book differs in a way later
    entries about other customers would see: held money that an entry dated up to `until`
    (the last later entry's day) forfeits. What books add to the volume is in `volume`;
    whether a later tier multiplier feels it is the caller's question (tier_change_at).
    `among`: the only customers whose books may differ (those put since the two folds
    parted, PartnerState.puts); without it, every book is compared."""
    if (now.last_run != was.last_run or now.disputes != was.disputes
            or now.comarketing != was.comarketing or now.payouts != was.payouts):
        return None
    books: dict[str, CustomerBook] = {}
    volume: Volumes = {}
    a, b = now.customers, was.customers
    if a is not b:
        for cid in (a.keys() | b.keys() if among is None else among):
            book, old = a.get(cid), b.get(cid)
            if old is book:
                continue
            if book is None or not (_vests_alike(book, until) and _vests_alike(old, until)):
                return None
            if book != old:
                books[cid] = book
                if not _add_volume(volume, book, old):
                    return None
    payable = {c: now.payable.get(c, 0) - was.payable.get(c, 0)
               for c in now.payable.keys() | was.payable.keys()}
    if now.pending.keys() != was.pending.keys() or now.payable.keys() != was.payable.keys():
        return None  # (a currency's first money: rare, and not worth carrying over)
    return Difference(books, _lots_delta(now.pending, was.pending),
                      {c: v for c, v in payable.items() if v},  # type: ignore[misc]
                      _lots_delta(now.payable_changes, was.payable_changes),
                      {c: v for c, v in volume.items() if v})


def _vests_alike(book: CustomerBook | None, until: date | None) -> bool:
    """No later entry (dated up to `until`) forfeits this book's held money: it holds none,
    has no deadline, or its deadline is not before `until`. (An entry about the customer
    itself, a milestone or a churn, is the caller's `touched` check.)"""
    return (book is None or not book.held or book.vest_deadline is None or until is None
            or book.vest_deadline >= until)


def _add_volume(volume: Volumes, book: CustomerBook, old: CustomerBook | None) -> bool:
    """Add book's term of the volume less old's (arr × share when active), exactly; False
    when the sum cannot be exact (then the fold does not stop)."""
    try:
        if book.active:
            c = book.currency
            volume[c] = EXACT.add(volume.get(c, 0), EXACT.multiply(book.arr, book.share))
        if old is not None and old.active:
            c = old.currency
            volume[c] = EXACT.subtract(volume.get(c, 0), EXACT.multiply(old.arr, old.share))
    except (Inexact, InvalidOperation, TypeError):
        return False
    return True


def tier_change_at(volumes: Sequence[list[VolumeRead] | None], shift: Volumes,
                   start: int, end: int | None = None) -> int:
    """The last position, from `start` on (and before `end`: by default, the end), of an
    entry whose tier multiplier would change were the volumes it read moved by `shift`;
    start - 1 when there is none. Scans from the end, so it stops at the last one (the
    fold may stop only after it)."""
    for k in range((len(volumes) if end is None else end) - 1, start - 1, -1):
        reads = volumes[k]
        if reads is not None and not all(_same_tier(r, shift) for r in reads):
            return k
    return start - 1


def _same_tier(read: VolumeRead, shift: Volumes) -> bool:
    currency, volume, tiers = read
    d = shift.get(currency)
    if d is None:
        return True
    try:
        moved = EXACT.add(volume, d)
    except (Inexact, InvalidOperation):
        return False
    return tiers.multiplier_at(moved) == tiers.multiplier_at(volume)


def shifted(reads: list[VolumeRead], shift: Volumes) -> list[VolumeRead]:
    """The volumes an entry read, moved by `shift` (after a cut: what it read in the new
    history, the later states having been carried over); tier_change_at checked them."""
    return [(c, EXACT.add(v, shift[c]) if c in shift else v, t) for c, v, t in reads]


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
