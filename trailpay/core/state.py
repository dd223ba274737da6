"""A partner's accrual state: everything the plan engine must remember between entries.

The accrual service keeps one of these per partner (Kafka partitions by partner,
so one consumer owns it). It is a plain value: `accrue` takes one and returns a
new one, and it round-trips through JSON exactly (Decimals as strings), so the
state stored with the postings is the state a replay would rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Context, Decimal, Inexact, InvalidOperation, getcontext
from functools import cache
from typing import Any

from trailpay.core.frozen import maker, replacer

ZERO = Decimal(0)


class _Unknown:
    """A cached value not yet worked out: one instance, which pickles and copies as itself."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_UNKNOWN"

    def __repr__(self) -> str:
        return "_UNKNOWN"


_UNKNOWN: Any = _Unknown()
_new = object.__new__


@cache
def _scale(n: int) -> Decimal:
    return Decimal(1).scaleb(n, EXACT)


@dataclass(frozen=True, slots=True)
class CustomerBook:
    """One customer as seen by one partner: its contract, ARR and upfront money."""

    customer_id: str
    deal_id: str
    currency: str
    share: Decimal
    start_date: date
    term_months: int
    arr: Decimal  # the customer's current ARR (whole customer; the partner's part is × share)
    active: bool = True
    upfront_rule: str | None = None
    upfront_rate: Decimal | None = None
    earned: Decimal = ZERO  # upfront posted to this partner, rounded
    held: Decimal = ZERO  # part of `earned` still held for vesting
    forfeited: Decimal = ZERO
    clawed_back: Decimal = ZERO
    vest_deadline: date | None = None
    release_on: tuple[str, ...] = ()
    milestones: tuple[str, ...] = ()  # milestones already paid a bonus

    @property
    def right(self) -> Decimal:
        """Upfront money the partner still holds a right to (earned − forfeited − clawed back)."""
        return self.earned - self.forfeited - self.clawed_back


@dataclass(slots=True)
class Payout:
    payout_id: str
    currency: str
    amount: Decimal
    status: str  # in_payout | paid | failed
    reference: str | None = None


# Containers of a PartnerState, as bits: those a state shares with another one are copied
# before its first change (copy-on-write), so `copy()` costs nothing up front.
_CUSTOMERS, _VESTING, _PENDING, _PAYABLE, _CHANGES, _COMARKETING, _PAYOUTS, _DISPUTES = (
    1, 2, 4, 8, 16, 32, 64, 128)
_ALL = 255
# Exact sums for the volume index (see PartnerState.volume_value), and for the re-fold's
# volume and ARR differences (shortcut.py, timeline.py); Inexact is raised, not hidden.
EXACT = Context(prec=80, traps=[Inexact, InvalidOperation])


@dataclass(slots=True)
class PartnerState:
    partner_id: str
    customers: dict[str, CustomerBook] = field(default_factory=dict)
    # Pending money by currency and the date it becomes payable (payout.hold_days).
    pending: dict[str, dict[date, Decimal]] = field(default_factory=dict)
    payable: dict[str, Decimal] = field(default_factory=dict)
    # Co-marketing matched so far, by "YYYYQn:CUR:rule_id".
    comarketing: dict[str, Decimal] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)
    last_run: date | None = None  # as_of of the latest payout run applied
    # Open disputes: dispute_id -> the disputed posting (group) id. Any open dispute holds
    # the partner's payouts.
    disputes: dict[str, str] = field(default_factory=dict)
    # Changes to `payable` by the day they took effect, kept only for days after `last_run`:
    # entries dated after a run's as_of may be applied before the run, and the run must pay
    # the balance as of its own date, exactly as the statement shows it.
    payable_changes: dict[str, dict[date, Decimal]] = field(default_factory=dict)
    # Derived index (not stored): customers with held money -> their vesting deadline, so
    # the forfeit check at every entry looks at those few, not at every customer.
    vesting_due: dict[str, date] = field(default_factory=dict)
    # Not state, bookkeeping: which containers are shared with another state (bits above),
    # and the volume index (currency -> (exact sum, bound, least exponent); see volume_value).
    _shared: int = field(default=0, init=False, repr=False, compare=False)
    _volume: dict[str, tuple[Decimal, Decimal, int]] | None = field(
        default=None, init=False, repr=False, compare=False)
    # The earliest pending lot and vesting deadline (None: there is none), or _UNKNOWN.
    _first_due: Any = field(default=_UNKNOWN, init=False, repr=False, compare=False)
    _first_deadline: Any = field(default=_UNKNOWN, init=False, repr=False, compare=False)
    # The customers whose books were put since a fold began logging (core.timeline: a
    # re-fold compares those books only). Shared by the states one derives from another.
    puts: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    # Every change to a state goes through the methods below: they copy a shared container
    # before changing it. Reading the containers directly is fine; changing them is not.

    def copy(self) -> PartnerState:
        """A copy safe to change through its methods; this state is never changed by them.

        Containers are shared until one side changes one (then that side copies it first);
        books and payouts are immutable members, shared.
        """
        self._shared = _ALL
        c = _new(PartnerState)  # every slot set below, as __init__ would
        c.partner_id = self.partner_id
        c.customers = self.customers
        c.pending = self.pending
        c.payable = self.payable
        c.comarketing = self.comarketing
        c.payouts = self.payouts
        c.last_run = self.last_run
        c.disputes = self.disputes
        c.payable_changes = self.payable_changes
        c.vesting_due = self.vesting_due
        c._shared = _ALL
        c._volume = self._volume
        c._first_due = self._first_due
        c._first_deadline = self._first_deadline
        c.puts = self.puts
        return c

    def put(self, book: CustomerBook) -> None:
        """Store a customer's book; the only way books change, so the indexes stay true."""
        shared = self._shared
        if shared & _CUSTOMERS:
            self.customers = dict(self.customers)
            self._shared = shared = shared & ~_CUSTOMERS
        cid = book.customer_id
        old = self.customers.get(cid)
        self.customers[cid] = book
        if self.puts is not None:
            self.puts.append(cid)
        was = self.vesting_due.get(cid)
        if book.held and book.vest_deadline is not None:
            if shared & _VESTING:
                self.vesting_due = dict(self.vesting_due)
                self._shared = shared & ~_VESTING
            self.vesting_due[cid] = deadline = book.vest_deadline
        elif was is not None:
            if shared & _VESTING:
                self.vesting_due = dict(self.vesting_due)
                self._shared = shared & ~_VESTING
            del self.vesting_due[cid]
            deadline = None
        else:
            deadline = None
        first = self._first_deadline
        if first is not _UNKNOWN:
            if was is not None and was == first:
                self._first_deadline = _UNKNOWN
            elif deadline is not None and (first is None or deadline < first):
                self._first_deadline = deadline
        if self._volume and not (old is not None and old.arr is book.arr
                                 and old.share is book.share and old.active == book.active
                                 and old.currency == book.currency):
            self._volume_moved(old, book)  # (a book whose term is unchanged moves nothing)

    def own_lots(self, currency: str) -> dict[date, Decimal]:
        """The pending lots of a currency (which must exist), safe to change."""
        if self._shared & _PENDING:
            self.pending = {c: dict(lots) for c, lots in self.pending.items()}
            self._shared &= ~_PENDING
        self._first_due = _UNKNOWN
        return self.pending[currency]

    def first_deadline(self) -> date | None:
        """The earliest vesting deadline of any customer, None when nothing is held."""
        first = self._first_deadline
        if first is _UNKNOWN:
            first = self._first_deadline = min(self.vesting_due.values(), default=None)
        return first

    def add_pending(self, currency: str, due: date, amount: Decimal) -> None:
        """Money becomes pending until `due`."""
        if self._shared & _PENDING:
            self.pending = {c: dict(lots) for c, lots in self.pending.items()}
            self._shared &= ~_PENDING
        lots = self.pending.get(currency)
        if lots is None:
            lots = self.pending[currency] = {}
        lots[due] = lots.get(due, ZERO) + amount
        first = self._first_due
        if first is not _UNKNOWN and (first is None or due < first):
            self._first_due = due

    def add_payable(self, currency: str, day: date, amount: Decimal) -> None:
        """Change the payable balance, effective on `day`."""
        shared = self._shared
        if shared & _PAYABLE:
            self.payable = dict(self.payable)
            self._shared = shared = shared & ~_PAYABLE
        payable = self.payable
        payable[currency] = payable.get(currency, ZERO) + amount
        if self.last_run is not None and day <= self.last_run:
            return  # no later run can be as of a day before the last one: nothing to remember
        if shared & _CHANGES:
            self.payable_changes = {c: dict(days) for c, days in self.payable_changes.items()}
            self._shared = shared & ~_CHANGES
        days = self.payable_changes.get(currency)
        if days is None:
            days = self.payable_changes[currency] = {}
        days[day] = days.get(day, ZERO) + amount
        if not days[day]:
            del days[day]

    def adjust_payable(self, currency: str, amount: Decimal) -> None:
        """Change the payable balance alone (shortcut.carried: its remembered changes are
        carried separately)."""
        if self._shared & _PAYABLE:
            self.payable = dict(self.payable)
            self._shared &= ~_PAYABLE
        total = self.payable.get(currency, ZERO) + amount
        self.payable[currency] = total

    def adjust_payable_change(self, currency: str, day: date, amount: Decimal) -> None:
        """Change a remembered change of the payable balance alone (shortcut.carried)."""
        if self._shared & _CHANGES:
            self.payable_changes = {c: dict(days) for c, days in self.payable_changes.items()}
            self._shared &= ~_CHANGES
        days = self.payable_changes.setdefault(currency, {})
        days[day] = days.get(day, ZERO) + amount
        if not days[day]:
            del days[day]

    def set_comarketing(self, key: str, matched: Decimal) -> None:
        if self._shared & _COMARKETING:
            self.comarketing = dict(self.comarketing)
            self._shared &= ~_COMARKETING
        self.comarketing[key] = matched

    def set_payout(self, payout: Payout) -> None:
        if self._shared & _PAYOUTS:
            self.payouts = dict(self.payouts)
            self._shared &= ~_PAYOUTS
        self.payouts[payout.payout_id] = payout

    def open_dispute(self, dispute_id: str, posting_id: str) -> None:
        """Remember an open dispute (a dispute opened twice keeps its first posting)."""
        if dispute_id in self.disputes:
            return
        if self._shared & _DISPUTES:
            self.disputes = dict(self.disputes)
            self._shared &= ~_DISPUTES
        self.disputes[dispute_id] = posting_id

    def close_dispute(self, dispute_id: str) -> str | None:
        """Forget an open dispute; its posting id, or None when it was not open."""
        if dispute_id not in self.disputes:
            return None
        if self._shared & _DISPUTES:
            self.disputes = dict(self.disputes)
            self._shared &= ~_DISPUTES
        return self.disputes.pop(dispute_id)

    def payable_as_of(self, currency: str, day: date) -> Decimal:
        """The payable balance at the end of `day`, even if later-dated entries were applied."""
        later = sum((a for d, a in self.payable_changes.get(currency, {}).items() if d > day), ZERO)
        return self.payable_on(currency, day) - later

    def forget_payable_changes(self, through: date) -> None:
        """Drop remembered changes dated on or before `through` (the last run's as_of)."""
        kept: dict[str, dict[date, Decimal]] = {}
        for currency, changes in self.payable_changes.items():
            days = {d: a for d, a in changes.items() if d > through}
            if days:
                kept[currency] = days
        self.payable_changes = kept  # new containers: this state's own
        self._shared &= ~_CHANGES

    def volume(self, currency: str) -> Decimal:
        """Attributed active ARR: Σ over active customers of ARR × this partner's share.

        Counted per currency: customers billed in another currency are not converted.
        """
        return sum((b.arr * b.share for b in self.customers.values()
                    if b.active and b.currency == currency), ZERO)

    def volume_value(self, currency: str) -> Decimal:
        """volume(currency) by value, from an index that put() keeps up to date.

        Equal to volume() (the same number; its Decimal exponent may differ, so use it where
        only the value counts: comparisons, rounding). The index holds the exact sum of the
        terms b.arr × b.share; volume() adds them in the current context, and the two agree
        whenever no partial sum needs more digits than the context's precision, which the
        index checks (bound × 10^-exponent < 10^prec); otherwise volume() is asked.
        """
        index = self._volume
        hit = index.get(currency) if index is not None else None
        prec = getcontext().prec
        if hit is None or hit[1] * _scale(-min(hit[2], 0)) >= _scale(prec):
            hit = self._volume_index(currency)
            if hit is None or hit[1] * _scale(-min(hit[2], 0)) >= _scale(prec):
                return self.volume(currency)
        return hit[0] if hit[0] else ZERO

    def _volume_index(self, currency: str) -> tuple[Decimal, Decimal, int] | None:
        total = bound = ZERO
        least = 0
        try:
            for b in self.customers.values():
                if b.active and b.currency == currency:
                    term = b.arr * b.share
                    total = EXACT.add(total, term)
                    bound = EXACT.add(bound, abs(term))
                    least = min(least, term.as_tuple().exponent)
        except (Inexact, InvalidOperation, TypeError):
            return None
        hit = (total, bound, least)
        self._volume = {**(self._volume or {}), currency: hit}
        return hit

    def _volume_moved(self, old: CustomerBook | None, new: CustomerBook) -> None:
        """Keep the volume index true as one book is replaced (bounds only ever widen)."""
        index = dict(self._volume or {})
        try:
            if old is not None and old.active and old.currency in index:
                total, bound, least = index[old.currency]
                term = old.arr * old.share
                index[old.currency] = (EXACT.subtract(total, term), bound, least)
            if new.active and new.currency in index:
                total, bound, least = index[new.currency]
                term = new.arr * new.share
                index[new.currency] = (EXACT.add(total, term), EXACT.add(bound, abs(term)),
                                       min(least, term.as_tuple().exponent))
        except (Inexact, InvalidOperation, TypeError):
            index = {}
        self._volume = index

    def mature(self, day: date) -> None:
        """Pending lots whose hold has ended by `day` join the payable balance."""
        first = self._first_due
        if first is _UNKNOWN:
            first = min((min(lots) for lots in self.pending.values() if lots), default=None)
        if first is None or first > day:
            self._first_due = first
            return
        for currency, lots in self.pending.items():
            if not lots or min(lots) > day:
                continue
            due = [d for d in lots if d <= day]
            lots = self.own_lots(currency)
            for d in due:
                self.add_payable(currency, d, lots.pop(d))
        self._first_due = min((min(lots) for lots in self.pending.values() if lots), default=None)

    def payable_on(self, currency: str, day: date) -> Decimal:
        matured = sum((a for d, a in self.pending.get(currency, {}).items() if d <= day), ZERO)
        return self.payable.get(currency, ZERO) + matured


def new_state(partner_id: str) -> PartnerState:
    return PartnerState(partner_id)


# --- JSON ----------------------------------------------------------------------------------


def _enc(v: Any) -> Any:
    t = type(v)
    if t is str or t is bool or t is int or v is None:
        return v
    if t is Decimal:
        return str(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, tuple):
        return list(v)
    return v


_BOOK_DECIMALS = {"share", "arr", "upfront_rate", "earned", "held", "forfeited", "clawed_back"}
_BOOK_DATES = {"start_date", "vest_deadline"}
# CustomerBook's fields, read once (dataclasses.fields is slow): (name, default, kind).
_BOOK_NAMES = tuple(f.name for f in fields(CustomerBook))
_BOOK_PLAN = tuple(
    (f.name, f.default, "decimal" if f.name in _BOOK_DECIMALS else "date" if f.name in _BOOK_DATES
     else "tuple" if f.name in ("release_on", "milestones") else "")
    for f in fields(CustomerBook))
# CustomerBook(...) without the frozen dataclass's per-field object.__setattr__ (frozen.py).
make_book = _make_book = maker(CustomerBook)
# dataclasses.replace(book, ...) without its per-call field walk.
replace_book = replacer(CustomerBook)


def _book_from(d: dict[str, Any]) -> CustomerBook:
    kw: dict[str, Any] = {}
    for name, default, kind in _BOOK_PLAN:
        v = d.get(name, default)
        if v is None:
            kw[name] = None
        elif kind == "decimal":
            kw[name] = Decimal(v)
        elif kind == "date":
            kw[name] = date.fromisoformat(v)
        elif kind == "tuple":
            kw[name] = tuple(v)
        else:
            kw[name] = v
    return _make_book(**kw)


def _book_to(b: CustomerBook) -> dict[str, Any]:
    names = _BOOK_NAMES if type(b) is CustomerBook else tuple(f.name for f in fields(b))
    return {n: _enc(getattr(b, n)) for n in names}


def state_to_json(s: PartnerState) -> dict[str, Any]:
    return {
        "partner_id": s.partner_id,
        "customers": {k: _book_to(b) for k, b in sorted(s.customers.items())},
        "pending": {c: {d.isoformat(): str(a) for d, a in sorted(lots.items())}
                    for c, lots in sorted(s.pending.items())},
        "payable": {c: str(a) for c, a in sorted(s.payable.items())},
        "comarketing": {k: str(a) for k, a in sorted(s.comarketing.items())},
        "payouts": {k: {"payout_id": p.payout_id, "currency": p.currency, "amount": str(p.amount),
                        "status": p.status, "reference": p.reference}
                    for k, p in sorted(s.payouts.items())},
        "last_run": s.last_run.isoformat() if s.last_run else None,
        "disputes": dict(sorted(s.disputes.items())),
        "payable_changes": {c: {d.isoformat(): str(a) for d, a in sorted(days.items())}
                            for c, days in sorted(s.payable_changes.items())},
    }


def state_from_json(d: dict[str, Any]) -> PartnerState:
    state = PartnerState(
        partner_id=d["partner_id"],
        customers={k: _book_from(b) for k, b in d.get("customers", {}).items()},
        pending={c: {date.fromisoformat(k): Decimal(a) for k, a in lots.items()}
                 for c, lots in d.get("pending", {}).items()},
        payable={c: Decimal(a) for c, a in d.get("payable", {}).items()},
        comarketing={k: Decimal(a) for k, a in d.get("comarketing", {}).items()},
        payouts={k: Payout(p["payout_id"], p["currency"], Decimal(p["amount"]), p["status"],
                           p.get("reference")) for k, p in d.get("payouts", {}).items()},
        last_run=date.fromisoformat(d["last_run"]) if d.get("last_run") else None,
        disputes=dict(d.get("disputes", {})),
        payable_changes={c: {date.fromisoformat(k): Decimal(a) for k, a in days.items()}
                         for c, days in d.get("payable_changes", {}).items()},
    )
    for book in state.customers.values():
        if book.held and book.vest_deadline is not None:
            state.vesting_due[book.customer_id] = book.vest_deadline
    return state
