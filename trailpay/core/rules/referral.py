"""Referral bonuses: a flat amount for each qualified lead, in the plan's currency."""

from __future__ import annotations

from trailpay.core.facts import ReferralQualified
from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, amount_in, fmt


def on_referral(ctx: Context, fact: ReferralQualified) -> None:
    for rule in ctx.rules("referral"):
        assert rule.amount is not None
        cur = ctx.plan.currency
        flat = amount_in(rule.amount, cur, rule, "amount")
        amount = round_money(flat, cur)
        if not amount:
            continue
        text = f"Referral of lead {fact.lead_id} qualified: {fmt(amount, cur)} {cur}"
        ctx.group(rule, "referral", ctx.earn(make_money(amount, cur)), text, base=flat,
                  unrounded=flat)
