"""Expansion commissions: growth in ARR × rate × the volume multiplier.

Fires on subscription.expanded (delta_arr) and on deal.closed kind=expansion
(its acv); either way the customer's current ARR grows by that much afterwards.
"""

from __future__ import annotations

from decimal import Decimal

from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, fmt, pct, volume_text
from trailpay.core.state import replace_book


def on_expansion(ctx: Context, delta: Decimal, currency: str) -> None:
    book = ctx.state.customers.get(ctx.entry.customer_id or "")
    if book is not None:
        ctx.same_currency(book, currency, "expansion")
    share = ctx.entry.share
    mult, volume = ctx.multiplier(currency)
    for rule in ctx.rules("expansion"):
        assert rule.rate is not None
        unrounded = delta * rule.rate * mult * share
        amount = round_money(unrounded, currency)
        if not amount:
            continue
        text = f"Expansion: {pct(rule.rate)} of added ARR {fmt(delta, currency)} {currency}"
        text += volume_text(mult, volume, currency)
        text += f", your share {pct(share)}: {fmt(amount, currency)}"
        ctx.group(rule, "expansion", ctx.earn(make_money(amount, currency)), text, base=delta,
                  rate=rule.rate, multiplier=mult, share=share, unrounded=unrounded)
    if book is not None:
        ctx.state.put(replace_book(book, arr=book.arr + delta))


def on_contraction(ctx: Context, delta: Decimal, currency: str) -> None:
    """ARR lost: no posting, but the partner's volume (and so its tier) goes down."""
    book = ctx.state.customers.get(ctx.entry.customer_id or "")
    if book is not None:
        ctx.same_currency(book, currency, "contraction")
        ctx.state.put(replace_book(book, arr=max(book.arr - delta, delta * 0)))
