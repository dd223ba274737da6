"""Disputes on statement lines: an open dispute holds the partner's payouts.

Opening a dispute moves no money; it only holds the partner's next payout runs.
Resolving it releases the hold; an accepted dispute may carry an adjustment, posted
like an ops adjustment (company expense → partner payable, signed, never rounded:
an amount with more digits than the currency allows is refused).
"""

from __future__ import annotations

from trailpay.core.effects import DISPUTE_OPENED, DISPUTE_RESOLVED
from trailpay.core.facts import DisputeOpened, DisputeResolved
from trailpay.core.money import MINOR_UNITS, make_money, round_money
from trailpay.core.postings import COMPANY_ACCOUNT, EXPENSE, make_leg
from trailpay.core.rules.base import AccrualError, Context, fmt

OUTCOMES = ("accepted", "rejected")


def on_opened(ctx: Context, fact: DisputeOpened) -> None:
    if fact.dispute_id not in ctx.state.disputes:
        ctx.state.open_dispute(fact.dispute_id, fact.posting_id)
        ctx.said(DISPUTE_OPENED)


def on_resolved(ctx: Context, fact: DisputeResolved) -> None:
    if fact.outcome not in OUTCOMES:
        raise AccrualError(f"data.outcome: must be accepted or rejected, not {fact.outcome!r}")
    posting = ctx.state.close_dispute(fact.dispute_id)
    if posting is None:
        raise AccrualError(f"dispute {fact.dispute_id} is not open for partner "
                           f"{ctx.entry.partner_id}")
    amount, cur = fact.adjustment_amount, fact.adjustment_currency
    if amount is None:
        ctx.said(DISPUTE_RESOLVED, detail=posting)
        return
    if fact.outcome != "accepted":
        raise AccrualError("data.adjustment_amount: only an accepted dispute posts an adjustment")
    if cur not in MINOR_UNITS:
        raise AccrualError(f"data.adjustment_currency: unknown currency {cur!r}")
    if round_money(amount, cur) != amount:
        raise AccrualError(f"data.adjustment_amount: {amount} has more digits than {cur} allows")
    if not amount:
        ctx.said(DISPUTE_RESOLVED, detail=posting)
        return
    money = make_money(amount, cur)
    reason = f": {fact.adjustment_reason}" if fact.adjustment_reason else ""
    text = (f"Dispute {fact.dispute_id} on posting {posting} accepted by {fact.resolved_by}"
            f"{reason}: {'+' if amount > 0 else ''}{fmt(amount, cur)} {cur}")
    g = ctx.group("dispute", "adjustment",
                  [make_leg(COMPANY_ACCOUNT, EXPENSE, -money), ctx.pay_now(money)],
                  text, base=amount, unrounded=amount)
    ctx.said(DISPUTE_RESOLVED, group=g, detail=posting)
