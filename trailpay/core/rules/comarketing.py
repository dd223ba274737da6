"""Co-marketing (MDF) matching: spend × match_rate, at most cap_per_quarter.

The cap is per partner, rule, currency and calendar quarter of the event's
time; what was matched so far in the quarter lives in the partner's state.
"""

from __future__ import annotations

from trailpay.core.facts import ComarketingCompleted
from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, amount_in, fmt, pct
from trailpay.core.state import ZERO


def on_comarketing(ctx: Context, fact: ComarketingCompleted) -> None:
    cur = fact.currency
    quarter = f"{ctx.day.year}Q{(ctx.day.month - 1) // 3 + 1}"
    for rule in ctx.rules("comarketing"):
        assert rule.match_rate is not None
        whole = fact.spend * rule.match_rate
        key = f"{quarter}:{cur}:{rule.id}"
        used = ctx.state.comarketing.get(key, ZERO)
        text = (f"Co-marketing {fact.activity}: {pct(rule.match_rate)} match of spend "
                f"{fmt(fact.spend, cur)} {cur}")
        unrounded = whole
        if rule.cap_per_quarter is not None:
            cap = amount_in(rule.cap_per_quarter, cur, rule, "cap_per_quarter")
            room = max(cap - used, ZERO)
            if whole > room:
                unrounded = room
                text += (f", capped at {fmt(cap, cur)} per quarter ({fmt(used, cur)} already "
                         f"matched in {quarter})")
        amount = round_money(unrounded, cur)
        if not amount:
            continue
        text += f": {fmt(amount, cur)}"
        ctx.state.set_comarketing(key, used + amount)
        ctx.group(rule, "comarketing", ctx.earn(make_money(amount, cur)), text, base=fact.spend,
                  rate=rule.match_rate, unrounded=whole)
