"""Balances and statements, computed from posting legs: the partner's view of the books.

Pending money becomes payable on its `available_on` date without a posting
of its own, so a balance "as of" a date and a statement's "hold ended" lines
are both derived here from the same rule, and opening + lines = closing.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from trailpay.core.frozen import maker
from trailpay.core.money import round_money
from trailpay.core.postings import BUCKETS


@dataclass(frozen=True, slots=True)
class LegRow:
    """A partner posting leg as stored (the company side is not the partner's view)."""

    effective_at: datetime
    currency: str
    bucket: str
    amount: Decimal
    available_on: date | None = None
    group_id: str = ""
    event_id: str = ""
    event_type: str = ""
    customer_id: str | None = None
    deal_id: str | None = None
    rule_id: str = ""
    rule_kind: str = ""
    plan_id: str | None = None
    plan_version: int | None = None
    # The explanation's figures, as shown: decimal text in shortest form ("0.05"). A
    # statement never computes with them; the posting's Decimal values are the record.
    base: str | None = None
    rate: str | None = None
    multiplier: str | None = None
    share: str | None = None
    explanation: str = ""
    unrounded: str | None = None  # the exact amount before rounding to the minor unit


def bucket_on(bucket: str, available_on: date | None, as_of: date) -> str:
    """Pending money whose hold has ended by `as_of` is payable."""
    if bucket == "pending" and available_on is not None and available_on <= as_of:
        return "payable"
    return bucket


Balances = dict[str, dict[str, Decimal]]


def empty(currency: str) -> dict[str, Decimal]:
    return {b: Decimal(0) for b in BUCKETS}


def balances_as_of(rows: Iterable[tuple[str, str, date | None, Decimal]], as_of: date) -> Balances:
    """rows: (currency, bucket, available_on, amount) of everything effective by as_of."""
    out: Balances = {}
    for currency, bucket, available_on, amount in rows:
        per = out.get(currency)
        if per is None:
            per = out[currency] = empty(currency)
        per[bucket_on(bucket, available_on, as_of)] += amount
    return out


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-03' -> (2026-03-01, 2026-03-31); ValueError when malformed."""
    year, mon = month.split("-")
    y, m = int(year), int(mon)
    if len(year) != 4 or len(mon) != 2 or not 1 <= m <= 12:
        raise ValueError(f"not a YYYY-MM month: {month!r}")
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


@dataclass(frozen=True, slots=True)
class StatementLine:
    date: date
    currency: str
    bucket: str
    amount: Decimal
    leg: LegRow | None  # None for a "hold ended" line
    explanation: str


# Constructors without the frozen dataclasses' per-field object.__setattr__ (see frozen.py):
# a cold statement read builds one LegRow and one line per leg.
make_leg_row = maker(LegRow)
_make_line = maker(StatementLine)


@dataclass
class Statement:
    partner_id: str
    month: str
    opening: Balances
    lines: list[StatementLine] = field(default_factory=list)
    closing: Balances = field(default_factory=dict)


def build_statement(partner_id: str, month: str, opening_rows: list[LegRow],
                    month_rows: list[LegRow]) -> Statement:
    """opening_rows: legs effective before the month; month_rows: legs effective in it."""
    first, last = month_bounds(month)
    day_before = date.fromordinal(first.toordinal() - 1)
    opening = balances_as_of(
        ((r.currency, r.bucket, r.available_on, r.amount) for r in opening_rows), day_before)
    lines: list[StatementLine] = []
    for r in sorted(month_rows, key=lambda r: (r.effective_at, r.group_id)):
        day = r.effective_at.date()
        lines.append(_make_line(day, r.currency, bucket_on(r.bucket, r.available_on, day),
                                   r.amount, r, r.explanation))
    for r in [*opening_rows, *month_rows]:
        if r.bucket == "pending" and r.available_on and first <= r.available_on <= last \
                and r.effective_at.date() < r.available_on:
            text = (f"Hold period ended: {round_money(r.amount, r.currency):f} {r.currency} "
                    f"from {r.event_type} {r.event_id} became payable")
            lines.append(_make_line(r.available_on, r.currency, "pending", -r.amount, None, text))
            lines.append(_make_line(r.available_on, r.currency, "payable", r.amount, None, text))
    lines.sort(key=lambda ln: (ln.date, ln.leg is None, ln.leg.group_id if ln.leg else ""))
    closing = {c: dict(b) for c, b in opening.items()}
    for ln in lines:
        per = closing.get(ln.currency)
        if per is None:
            per = closing[ln.currency] = empty(ln.currency)
        per[ln.bucket] += ln.amount
    return Statement(partner_id, month, opening, lines, closing)
