"""Payout runs and their confirmations: payable → in_payout → paid (or back to payable).

A run pays, per currency, the partner's payable balance at the end of `as_of` when it
reaches the plan's `payout.minimum` in that currency (no minimum in a currency: that
currency is not paid; nothing is converted), unless an open dispute holds the partner.
A run as of a day on or before the partner's last run does nothing, so a repeated or
late run never pays twice; a run held by an open dispute pays nothing and does not count
as a run, so it can be asked again once the dispute is resolved. The ERP's confirmation moves the money to `paid`, or back
to `payable` on failure; the same confirmation twice is a no-op, a contradicting one
is refused.
"""

from __future__ import annotations

from dataclasses import replace

from trailpay.core.facts import PayoutConfirmed, PayoutFailed, PayoutRunRequested
from trailpay.core.money import make_money
from trailpay.core.payouts import payout_id
from trailpay.core.effects import PAYOUT_CREATED, PAYOUT_SETTLED
from trailpay.core.postings import make_leg
from trailpay.core.rules.base import AccrualError, Context, fmt
from trailpay.core.state import Payout


def on_run(ctx: Context, fact: PayoutRunRequested) -> None:
    s, as_of = ctx.state, fact.as_of
    if ctx.day != as_of:
        raise AccrualError(f"payout run {fact.run_id}: its time must fall on its as_of date "
                           f"{as_of.isoformat()}, not on {ctx.day.isoformat()}")
    if s.last_run is not None and as_of <= s.last_run:
        return  # already run as of this day or a later one
    if ctx.recorded is not None:
        _replay(ctx, fact)
        return
    if s.disputes:
        return  # held: the money stays payable, and the run may be asked again once resolved
    amounts = {c: s.payable_as_of(c, as_of)
               for c in sorted({*s.payable, *s.pending, *s.payable_changes})}
    s.last_run = as_of
    s.forget_payable_changes(as_of)
    for currency, amount in amounts.items():
        minimum = ctx.plan.payout.minimum.get(currency)
        if minimum is None or amount <= 0 or amount < minimum:
            continue
        pid = payout_id(fact.run_id, fact.partner_id, currency)
        if pid in s.payouts:
            continue
        text = (f"Payout {pid}: the payable balance at the end of {as_of.isoformat()}, "
                f"{fmt(amount, currency)} {currency} (minimum {fmt(minimum, currency)}), "
                "sent for payment")
        _send(ctx, Payout(pid, currency, amount, "in_payout"), text)


def _send(ctx: Context, payout: Payout, text: str) -> None:
    money = make_money(payout.amount, payout.currency)
    ctx.state.add_payable(payout.currency, ctx.day, -payout.amount)
    g = ctx.group("payout", "payout", [make_leg(ctx.partner, "payable", -money),
                                       make_leg(ctx.partner, "in_payout", money)], text,
                  base=payout.amount)
    ctx.state.set_payout(payout)
    ctx.said(PAYOUT_CREATED, payout, g)


def _replay(ctx: Context, fact: PayoutRunRequested) -> None:
    """A run folded again after a late entry: its payouts are facts once made (design §4),
    so it pays what it paid the first time, whatever is payable under corrected figures."""
    s, as_of = ctx.state, fact.as_of
    prefix = payout_id(fact.run_id, fact.partner_id, "")
    assert ctx.recorded is not None
    paid = sorted((pid, p) for pid, p in ctx.recorded.items() if pid.startswith(prefix))
    if s.disputes and not paid:
        return  # held, as it was the first time
    s.last_run = as_of
    s.forget_payable_changes(as_of)
    for pid, made in paid:
        if pid not in s.payouts:
            _send(ctx, Payout(pid, made.currency, made.amount, "in_payout"),
                  f"Payout {pid}: {fmt(made.amount, made.currency)} {made.currency} sent for "
                  f"payment as of {as_of.isoformat()} (as recorded)")


def _payout(ctx: Context, pid: str) -> Payout:
    p = ctx.state.payouts.get(pid)
    if p is None:
        raise AccrualError(f"unknown payout {pid!r} for partner {ctx.entry.partner_id}")
    return p


def _settled(p: Payout, status: str, reference: str) -> bool:
    """True when the payout is already settled exactly so; raises when settled otherwise."""
    if p.status == "in_payout":
        return False
    if (p.status, p.reference) == (status, reference):
        return True
    raise AccrualError(f"payout {p.payout_id} was already confirmed {p.status} with reference "
                       f"{p.reference!r}; a {status} confirmation with reference {reference!r} "
                       "contradicts it")


def on_confirmed(ctx: Context, fact: PayoutConfirmed) -> None:
    p = _payout(ctx, fact.payout_id)
    if _settled(p, "paid", fact.reference):
        return
    money = make_money(p.amount, p.currency)
    text = (f"Payout {p.payout_id} of {fmt(p.amount, p.currency)} {p.currency} paid "
            f"(payment reference {fact.reference})")
    g = ctx.group("payout", "payout", [make_leg(ctx.partner, "in_payout", -money),
                                       make_leg(ctx.partner, "paid", money)], text, base=p.amount)
    settled = replace(p, status="paid", reference=fact.reference)
    ctx.state.set_payout(settled)
    ctx.said(PAYOUT_SETTLED, settled, g)


def on_failed(ctx: Context, fact: PayoutFailed) -> None:
    p = _payout(ctx, fact.payout_id)
    if _settled(p, "failed", fact.reference):
        return
    money = make_money(p.amount, p.currency)
    text = (f"Payout {p.payout_id} of {fmt(p.amount, p.currency)} {p.currency} failed "
            f"(payment reference {fact.reference}): the money is payable again and goes "
            "with the next payout run")
    g = ctx.group("payout", "payout", [make_leg(ctx.partner, "in_payout", -money),
                                       ctx.pay_now(money)], text, base=p.amount)
    settled = replace(p, status="failed", reference=fact.reference)
    ctx.state.set_payout(settled)
    ctx.said(PAYOUT_SETTLED, settled, g)
