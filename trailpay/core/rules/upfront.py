"""Upfront ("anchor") commissions on a new deal, with optional vesting of a held part.

base (ACV or TCV) × rate, capped per deal before the split, × the partner's share,
rounded half-even once. With vesting, `held_pct` of it waits in `held` for a
release milestone (see vesting.py); the rest is pending for the hold period.
"""

from __future__ import annotations

from datetime import timedelta

from trailpay.core.facts import DealClosed
from trailpay.core.money import make_money, round_money
from trailpay.core.rules.base import AccrualError, Context, amount_in, fmt, pct
from trailpay.core.state import make_book, replace_book


def milestones_text(names: tuple[str, ...]) -> str:
    return " or ".join(n.replace("_", " ") for n in names)


def on_new_deal(ctx: Context, fact: DealClosed) -> None:
    """A new contract. A customer still active with this partner cannot get a second one
    (that would pay the upfront twice): such a deal must be a renewal or an expansion."""
    known = ctx.state.customers.get(fact.customer_id)
    if known is not None and known.active:
        raise AccrualError(f"data.kind: customer {fact.customer_id} already has an active "
                           f"contract (deal {known.deal_id}) with partner {ctx.entry.partner_id}; "
                           "send a further deal as kind renewal or expansion")
    share, cur = ctx.entry.share, fact.currency
    book = make_book(fact.customer_id, fact.deal_id, cur, share, fact.start_date,
                        fact.term_months, fact.acv)
    for rule in ctx.rules("upfront"):
        assert rule.rate is not None
        base = fact.acv if rule.base == "acv" else fact.tcv
        whole = base * rule.rate
        cap = amount_in(rule.cap, cur, rule, "cap") if rule.cap else None
        capped = min(whole, cap) if cap is not None else whole
        unrounded = capped * share
        amount = round_money(unrounded, cur)
        if not amount:
            continue
        text = f"{pct(rule.rate)} of {rule.base.upper()} {fmt(base, cur)} {cur}"
        if capped < whole:
            text += f", capped at {fmt(capped, cur)}"
        text += f", your share {pct(share)}: {fmt(amount, cur)}"
        held = round_money(amount * rule.vesting.held_pct, cur) if rule.vesting else amount * 0
        if rule.vesting and held:
            deadline = fact.start_date + timedelta(days=rule.vesting.within_days)
            text += (f"; {pct(rule.vesting.held_pct)} ({fmt(held, cur)}) held until "
                     f"{milestones_text(rule.vesting.release_on)}, by {deadline.isoformat()}")
            book = replace_book(book, vest_deadline=deadline, release_on=rule.vesting.release_on)
        ctx.group(rule, "upfront", ctx.earn(make_money(amount, cur), held), text, base=base,
                  rate=rule.rate, share=share, unrounded=unrounded)
        book = replace_book(book, upfront_rule=rule.id, upfront_rate=rule.rate,
                            earned=book.earned + amount, held=book.held + held)
    ctx.state.put(book)
