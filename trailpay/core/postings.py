"""Postings: double-entry lines, grouped so that each group sums to zero.

A posting group is what one plan rule did to one partner because of one
ledger entry. It refuses to exist unless its legs balance per currency; the
database checks the same again with a deferred constraint trigger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache

from trailpay.core.frozen import maker
from trailpay.core.money import Money

# Buckets of a partner account. `expense` is the company side of an accrual.
BUCKETS = ("held", "pending", "payable", "in_payout", "paid", "forfeited", "clawed_back")
COMPANY_ACCOUNT = "company:commissions"
EXPENSE = "expense"
NO_DATE = date(1, 1, 1)  # a balance key's "no available_on" (the projections' NOT NULL key)
BalanceKey = tuple[str, str, str, date]  # partner, currency, bucket, available_on
MonthKey = tuple[str, date, str, str, date]  # partner, first day of the month, then as above


def partner_account(partner_id: str) -> str:
    return f"partner:{partner_id}"


class UnbalancedPosting(ValueError):
    """A posting group whose legs do not sum to zero in some currency."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of a posting group. Positive adds to the bucket, negative takes."""

    account: str
    bucket: str
    amount: Money
    # Pending money becomes payable on this date (design §3: payout.hold_days).
    available_on: date | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a group exists: the cause and the arithmetic, for statements and audit."""

    rule_id: str
    rule_kind: str
    sentence: str
    plan_id: str | None = None
    plan_version: int | None = None
    base: Decimal | None = None
    rate: Decimal | None = None
    multiplier: Decimal | None = None
    share: Decimal | None = None
    unrounded: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PostingGroup:
    """Legs that move money together, traced to the entry that caused them."""

    group_id: str  # f"{entry_id}:{rule_id}:{n}"; deterministic, never random
    entry_id: str
    journal_seq: int
    event_id: str
    event_type: str
    effective_at: datetime
    partner_id: str
    customer_id: str | None
    deal_id: str | None
    explanation: Explanation
    legs: tuple[Leg, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_balanced(self)


def check_balanced(g: PostingGroup) -> None:
    """Refuse a group without legs, or whose legs do not sum to zero in some currency."""
    legs = g.legs
    if not legs:
        raise UnbalancedPosting(f"posting group {g.group_id} has no legs")
    first = legs[0].amount.currency
    total = 0
    for leg in legs:  # the usual group: one currency, summed without a dict
        m = leg.amount
        if m.currency != first:
            break
        total += m.amount
    else:
        if not total:
            return
    totals: dict[str, Decimal] = {}
    for leg in legs:
        totals[leg.amount.currency] = totals.get(leg.amount.currency, Decimal(0)) + leg.amount.amount
    off = {c: t for c, t in totals.items() if t != 0}
    if off:
        raise UnbalancedPosting(f"posting group {g.group_id} does not balance: {off}")


# Constructors without the frozen dataclasses' per-field object.__setattr__ (see frozen.py).
make_leg = maker(Leg)
make_explanation = maker(Explanation)
_make_group = maker(PostingGroup)


def make_group(group_id: str, entry_id: str, journal_seq: int, event_id: str, event_type: str,
               effective_at: datetime, partner_id: str, customer_id: str | None,
               deal_id: str | None, explanation: Explanation, legs: tuple[Leg, ...]
               ) -> PostingGroup:
    """PostingGroup(...), balance-checked the same as its __post_init__ does."""
    g = _make_group(group_id, entry_id, journal_seq, event_id, event_type, effective_at,
                    partner_id, customer_id, deal_id, explanation, legs)
    check_balanced(g)
    return g


def month_of(at: datetime) -> date:
    """The first day of the (UTC) month an effective time falls in: statements' months."""
    if at.tzinfo is not UTC and at.tzinfo is not None:
        at = at.astimezone(UTC)
    return _first_day(at.year, at.month)


@lru_cache(maxsize=4096)
def _first_day(year: int, month: int) -> date:
    return date(year, month, 1)  # one shared value per month: a rebuild asks 300,000 times


def add_partner_legs(totals: dict[BalanceKey, Decimal], groups: Iterable[PostingGroup],
                     months: dict[MonthKey, Decimal] | None = None) -> None:
    """Add the partner legs of posting groups to balance totals, the balances projection's
    keys; with `months`, also to the same keys per effective month (the balance_months
    projection, from which a statement's opening is summed)."""
    company = COMPANY_ACCOUNT
    for g in groups:
        partner = g.partner_id
        month = month_of(g.effective_at) if months is not None else None
        for leg in g.legs:
            if leg.account == company:
                continue
            m = leg.amount
            amount = m.amount
            on = leg.available_on or NO_DATE
            key = (partner, m.currency, leg.bucket, on)
            totals[key] = totals.get(key, 0) + amount
            if month is not None:
                mkey = (partner, month, m.currency, leg.bucket, on)
                months[mkey] = months.get(mkey, 0) + amount  # type: ignore[index]
