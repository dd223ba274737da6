"""A partner's accrual state: everything the plan engine must remember between entries.

The accrual service keeps one of these per partner (Kafka partitions by partner,
so one consumer owns it). It is a plain value: `accrue` takes one and returns a
new one, and it round-trips through JSON exactly (Decimals as strings), so the
state stored with the postings is the state a replay would rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


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

    def put(self, book: CustomerBook) -> None:
        """Store a customer's book; the only way books change, so the index stays true."""
        self.customers[book.customer_id] = book
        if book.held and book.vest_deadline is not None:
            self.vesting_due[book.customer_id] = book.vest_deadline
        else:
            self.vesting_due.pop(book.customer_id, None)

    def copy(self) -> PartnerState:
        """A copy safe to change: containers are new, immutable members shared."""
        return PartnerState(
            self.partner_id, dict(self.customers),
            {c: dict(lots) for c, lots in self.pending.items()}, dict(self.payable),
            dict(self.comarketing), {k: replace(p) for k, p in self.payouts.items()},
            self.last_run, dict(self.disputes),
            {c: dict(days) for c, days in self.payable_changes.items()}, dict(self.vesting_due))

    def add_payable(self, currency: str, day: date, amount: Decimal) -> None:
        """Change the payable balance, effective on `day`."""
        self.payable[currency] = self.payable.get(currency, ZERO) + amount
        if self.last_run is not None and day <= self.last_run:
            return  # no later run can be as of a day before the last one: nothing to remember
        days = self.payable_changes.setdefault(currency, {})
        days[day] = days.get(day, ZERO) + amount
        if not days[day]:
            del days[day]

    def payable_as_of(self, currency: str, day: date) -> Decimal:
        """The payable balance at the end of `day`, even if later-dated entries were applied."""
        later = sum((a for d, a in self.payable_changes.get(currency, {}).items() if d > day), ZERO)
        return self.payable_on(currency, day) - later

    def forget_payable_changes(self, through: date) -> None:
        """Drop remembered changes dated on or before `through` (the last run's as_of)."""
        for currency in list(self.payable_changes):
            days = {d: a for d, a in self.payable_changes[currency].items() if d > through}
            if days:
                self.payable_changes[currency] = days
            else:
                del self.payable_changes[currency]

    def volume(self, currency: str) -> Decimal:
        """Attributed active ARR: Σ over active customers of ARR × this partner's share.

        Counted per currency: customers billed in another currency are not converted.
        """
        return sum((b.arr * b.share for b in self.customers.values()
                    if b.active and b.currency == currency), ZERO)

    def mature(self, day: date) -> None:
        """Pending lots whose hold has ended by `day` join the payable balance."""
        for currency, lots in self.pending.items():
            due = [d for d in lots if d <= day]
            for d in due:
                self.add_payable(currency, d, lots.pop(d))

    def payable_on(self, currency: str, day: date) -> Decimal:
        matured = sum((a for d, a in self.pending.get(currency, {}).items() if d <= day), ZERO)
        return self.payable.get(currency, ZERO) + matured


def new_state(partner_id: str) -> PartnerState:
    return PartnerState(partner_id)


# --- JSON ----------------------------------------------------------------------------------


def _enc(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, tuple):
        return list(v)
    return v


_BOOK_DECIMALS = {"share", "arr", "upfront_rate", "earned", "held", "forfeited", "clawed_back"}
_BOOK_DATES = {"start_date", "vest_deadline"}


def _book_from(d: dict[str, Any]) -> CustomerBook:
    kw: dict[str, Any] = {}
    for f in fields(CustomerBook):
        v = d.get(f.name, f.default)
        if v is None:
            kw[f.name] = None
        elif f.name in _BOOK_DECIMALS:
            kw[f.name] = Decimal(v)
        elif f.name in _BOOK_DATES:
            kw[f.name] = date.fromisoformat(v)
        elif f.name in ("release_on", "milestones"):
            kw[f.name] = tuple(v)
        else:
            kw[f.name] = v
    return CustomerBook(**kw)


def state_to_json(s: PartnerState) -> dict[str, Any]:
    return {
        "partner_id": s.partner_id,
        "customers": {k: {f.name: _enc(getattr(b, f.name)) for f in fields(b)}
                      for k, b in sorted(s.customers.items())},
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
