"""Usage commissions: billed usage revenue × rate × the partner's share."""

from __future__ import annotations

from trailpay.core.facts import UsageReported
from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, fmt, pct


def on_usage(ctx: Context, fact: UsageReported) -> None:
    share, cur = ctx.entry.share, fact.currency
    for rule in ctx.rules("usage"):
        assert rule.rate is not None
        unrounded = fact.revenue * rule.rate * share
        amount = round_money(unrounded, cur)
        if not amount:
            continue
        text = (f"Usage {fact.metric} {fact.period_start.isoformat()}–{fact.period_end.isoformat()}: "
                f"{pct(rule.rate)} of revenue {fmt(fact.revenue, cur)} {cur}, your share "
                f"{pct(share)}: {fmt(amount, cur)}")
        ctx.group(rule, "usage", ctx.earn(make_money(amount, cur)), text, base=fact.revenue,
                  rate=rule.rate, share=share, unrounded=unrounded)
