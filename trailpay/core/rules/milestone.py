"""Milestone bonuses: a flat amount, once per customer and milestone, × share.

Paid in the currency of the customer's deal; a plan that defines the amount
only in other currencies dead-letters the event rather than converting.
"""

from __future__ import annotations

from trailpay.core.facts import MilestoneAchieved
from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import Context, amount_in, fmt, pct
from trailpay.core.state import replace_book


def on_milestone(ctx: Context, fact: MilestoneAchieved) -> None:
    rules = [r for r in ctx.rules("milestone") if r.milestone == fact.milestone]
    if not rules:
        return
    book = ctx.book()
    if fact.milestone in book.milestones:
        return  # once per customer and milestone
    share, cur = ctx.entry.share, book.currency
    paid = False
    for rule in rules:
        if rule.min_score is not None and (fact.score is None or fact.score < rule.min_score):
            continue
        assert rule.amount is not None
        flat = amount_in(rule.amount, cur, rule, "amount")
        unrounded = flat * share
        amount = round_money(unrounded, cur)
        if not amount:
            continue
        text = f"Milestone {fact.milestone.replace('_', ' ')}"
        if fact.score is not None:
            text += f" (score {fact.score.normalize():f})"
        text += f": bonus {fmt(flat, cur)} {cur}, your share {pct(share)}: {fmt(amount, cur)}"
        ctx.group(rule, "milestone", ctx.earn(make_money(amount, cur)), text, base=flat, share=share,
                  unrounded=unrounded)
        paid = True
    if paid:
        ctx.state.put(replace_book(
            book, milestones=(*book.milestones, fact.milestone)))
