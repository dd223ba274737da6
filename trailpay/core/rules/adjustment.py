"""Manual adjustments approved by ops: signed, payable at once, never rounded away.

An amount with more digits than the currency's minor unit is refused rather than
rounded: an explicit figure from a person must post exactly as approved.
"""

from __future__ import annotations

from trailpay.core.facts import AdjustmentPosted
from trailpay.core.money import make_money, round_money
from trailpay.core.postings import COMPANY_ACCOUNT, EXPENSE, make_leg
from trailpay.core.rules.base import AccrualError, Context, fmt


def on_adjustment(ctx: Context, fact: AdjustmentPosted) -> None:
    cur = fact.currency
    if round_money(fact.amount, cur) != fact.amount:
        raise AccrualError(f"data.amount: {fact.amount} has more digits than {cur} allows")
    if not fact.amount:
        return
    money = make_money(fact.amount, cur)
    text = (f"Adjustment approved by {fact.approved_by}: {fact.reason}: "
            f"{'+' if fact.amount > 0 else ''}{fmt(fact.amount, cur)} {cur}")
    ctx.group("adjustment", "adjustment", [make_leg(COMPANY_ACCOUNT, EXPENSE, -money),
                                           ctx.pay_now(money)], text, base=fact.amount,
              unrounded=fact.amount)
