"""Trailing commissions on renewals: a rate by tenure year, × the volume multiplier.

Tenure year = whole years from the contract's start_date to the renewal's
period_start, plus one: the first renewal of a 12-month deal is year 2.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, fmt, pct, volume_text
from trailpay.core.state import replace_book


def tenure_year(start: date, period_start: date) -> int:
    years = period_start.year - start.year
    if (period_start.month, period_start.day) < (start.month, start.day):
        years -= 1
    return max(years, 0) + 1


def on_renewal(ctx: Context, arr: Decimal, currency: str, period_start: date) -> None:
    book = ctx.book()
    ctx.same_currency(book, currency, "renewal")
    share = ctx.entry.share
    year = tenure_year(book.start_date, period_start)
    mult, volume = ctx.multiplier(currency)
    for rule in ctx.rules("recurring"):
        rate = rule.rate_for_year(year)
        unrounded = arr * rate * mult * share
        amount = round_money(unrounded, currency)
        if not amount:
            continue
        text = f"Renewal, tenure year {year}: {pct(rate)} of ARR {fmt(arr, currency)} {currency}"
        text += volume_text(mult, volume, currency)
        text += f", your share {pct(share)}: {fmt(amount, currency)}"
        ctx.group(rule, "recurring", ctx.earn(make_money(amount, currency)), text, base=arr, rate=rate,
                  multiplier=mult, share=share, unrounded=unrounded)
    ctx.state.put(replace_book(book, arr=arr, active=True))
