"""The plan engine's step: (partner state, ledger entry, plan) -> (postings, new state).

Pure and deterministic: no clock, no randomness, no I/O. Entries are folded by
`fold.fold` in the order design §4 defines (event time, source, id); live processing,
the rebuild, the bench and simulations all fold through it. Time-driven effects
(pending money maturing, vesting deadlines) are decided by the entry's own time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from trailpay.core.facts import (
    COMMAND_SOURCE, COMMAND_TYPES, AdjustmentPosted, ComarketingCompleted, DealClosed,
    DisputeOpened, DisputeResolved, MilestoneAchieved, PayoutConfirmed, PayoutFailed,
    PayoutRunRequested, PlanRerated, ReferralQualified, RefundIssued, SubscriptionChurned,
    SubscriptionContracted, SubscriptionExpanded, SubscriptionRenewed, UsageReported,
)
from trailpay.core.effects import Effect
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Enrollment, PlanBook
from trailpay.core.postings import PostingGroup
from trailpay.core.rules import (
    adjustment, clawback, comarketing, disputes, expansion, milestone, payouts, recurring,
    referral, upfront, usage, vesting,
)
from trailpay.core.rules.base import AccrualError, Context, VolumeRead
from trailpay.core.state import (
    PartnerState, Payout, make_book, new_state, state_from_json, state_to_json,
)

__all__ = ["AccrualError", "accrue", "new_state", "state_from_json", "state_to_json", "step"]


def _deal(ctx: Context, fact: DealClosed) -> None:
    if fact.kind == "new":
        upfront.on_new_deal(ctx, fact)
        return
    if fact.customer_id not in ctx.state.customers:
        # A partner first attached to this customer by a renewal or expansion deal.
        ctx.state.put(make_book(
            fact.customer_id, fact.deal_id, fact.currency, ctx.entry.share, fact.start_date,
            fact.term_months, fact.acv * 0))
    if fact.kind == "expansion":
        expansion.on_expansion(ctx, fact.acv, fact.currency)
    else:
        recurring.on_renewal(ctx, fact.acv, fact.currency, fact.start_date)


def _milestone(ctx: Context, fact: MilestoneAchieved) -> None:
    vesting.release(ctx, fact)
    milestone.on_milestone(ctx, fact)


HANDLERS: dict[type, Callable[[Context, Any], None]] = {
    DealClosed: _deal,
    SubscriptionRenewed: lambda ctx, f: recurring.on_renewal(ctx, f.arr, f.currency, f.period_start),
    SubscriptionExpanded: lambda ctx, f: expansion.on_expansion(ctx, f.delta_arr, f.currency),
    SubscriptionContracted: lambda ctx, f: expansion.on_contraction(ctx, f.delta_arr, f.currency),
    SubscriptionChurned: clawback.on_churn,
    RefundIssued: clawback.on_refund,
    UsageReported: usage.on_usage,
    MilestoneAchieved: _milestone,
    ReferralQualified: referral.on_referral,
    ComarketingCompleted: comarketing.on_comarketing,
    AdjustmentPosted: adjustment.on_adjustment,
    PayoutRunRequested: payouts.on_run,
    PayoutConfirmed: payouts.on_confirmed,
    PayoutFailed: payouts.on_failed,
    DisputeOpened: disputes.on_opened,
    DisputeResolved: disputes.on_resolved,
    PlanRerated: lambda ctx, f: None,  # see step()
}


def accrue(state: PartnerState, entry: LedgerEntry, book: PlanBook,
           enrollment: Enrollment) -> tuple[list[PostingGroup], PartnerState]:
    """Apply one entry; the given state is never changed (a refused entry leaves no trace)."""
    groups, after, _ = step(state, entry, book, enrollment)
    return groups, after


def step(state: PartnerState, entry: LedgerEntry, book: PlanBook, enrollment: Enrollment,
         recorded: dict[str, Payout] | None = None, volumes: list[VolumeRead] | None = None
         ) -> tuple[list[PostingGroup], PartnerState, list[Effect]]:
    """accrue, and what the entry did (effects.py). `recorded`: the payouts already made,
    when the entry is folded again (a payout run then pays what it paid the first time).
    `volumes`: where to append the volumes it read to pick a tier (Context.multiplier)."""
    handler = HANDLERS.get(type(entry.fact))
    if handler is None:
        raise AccrualError(f"{entry.fact.type} is not handled by the plan engine")
    if entry.fact.type in COMMAND_TYPES and entry.source != COMMAND_SOURCE:
        raise AccrualError(f"{entry.fact.type} is a trailpay command: only {COMMAND_SOURCE} "
                           f"may send it, not {entry.source!r}")
    if type(entry.fact) is PlanRerated:
        return [], state, []  # its whole effect is the re-fold it causes (core.timeline)
    day = entry.time.astimezone(UTC).date()
    plan = book.in_force(day)
    if plan.partner_types and enrollment.type not in plan.partner_types:
        raise AccrualError(f"plan {plan.plan_id} version {plan.version} has no terms for partner "
                           f"type {enrollment.type!r} (it covers {', '.join(plan.partner_types)})")
    ctx = Context(entry, plan, enrollment, state.copy(), day, recorded=recorded,
                  volumes=volumes)
    ctx.state.mature(day)
    vesting.forfeit_expired(ctx)
    handler(ctx, entry.fact)
    return ctx.groups, ctx.state, ctx.effects
