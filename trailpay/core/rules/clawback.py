"""Clawbacks: churn or a refund inside the window takes upfront money back.

Churn reverses what the partner still has a right to (earned − forfeited), in
full or pro rata to the unserved whole months of the term; a refund reverses
amount × the upfront rate × share. Neither ever takes more than the right
that is left. Money comes from the customer's held part first, then pending,
then payable (which may go negative and is netted against later earnings).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from trailpay.core.facts import RefundIssued, SubscriptionChurned
from trailpay.core.money import make_money, round_money
from trailpay.core.rules import vesting
from trailpay.core.rules.base import AccrualError, Context, fmt, pct
from trailpay.core.state import ZERO, CustomerBook, replace_book


def whole_months(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return max(months, 0)


def _within(ctx: Context, book: CustomerBook, on: date) -> bool:
    window = ctx.plan.clawback.window_days
    return window > 0 and 0 <= (on - book.start_date).days <= window


def _claw(ctx: Context, book: CustomerBook, amount: Decimal, text: str,
          **why: Decimal | None) -> CustomerBook:
    legs, book = ctx.take(make_money(amount, book.currency), book)
    ctx.group(book.upfront_rule or "clawback", "clawback", legs, text, customer=book, **why)
    return replace_book(book, clawed_back=book.clawed_back + amount)


def on_churn(ctx: Context, fact: SubscriptionChurned) -> None:
    book = ctx.state.customers.get(fact.customer_id)
    if book is None:
        return
    if _within(ctx, book, fact.effective_date) and book.right > 0:
        cur, term = book.currency, book.term_months
        base = book.earned - book.forfeited
        days = (fact.effective_date - book.start_date).days
        text = (f"Customer {fact.customer_id} churned on {fact.effective_date.isoformat()} "
                f"({fact.reason}), {days} days after start, inside the "
                f"{ctx.plan.clawback.window_days}-day clawback window: ")
        if ctx.plan.clawback.mode == "full" or term <= 0:
            fraction = Decimal(1)
            text += f"the upfront commission ({fmt(base, cur)} {cur}) is reversed in full"
        else:
            unserved = max(term - whole_months(book.start_date, fact.effective_date), 0)
            fraction = Decimal(unserved) / Decimal(term)
            text += (f"{unserved} of {term} months unserved, so {unserved}/{term} of the upfront "
                     f"commission ({fmt(base, cur)} {cur}) is reversed")
        unrounded = base * fraction
        amount = min(round_money(unrounded, cur), book.right)
        if amount > 0:
            text += f": {fmt(amount, cur)} clawed back"
            book = _claw(ctx, book, amount, text, base=base, rate=fraction, unrounded=unrounded)
    if book.held:
        book = _forfeit_on_churn(ctx, book, fact)
    ctx.state.put(replace_book(book, active=False, arr=book.arr * 0))


def _forfeit_on_churn(ctx: Context, book: CustomerBook, fact: SubscriptionChurned) -> CustomerBook:
    """A churned customer will reach no release milestone: what is still held is forfeited."""
    return vesting.forfeit(ctx, book, (
        f"Customer {fact.customer_id} churned on {fact.effective_date.isoformat()}: held "
        f"{fmt(book.held, book.currency)} {book.currency} of the upfront commission can no longer "
        "vest and is forfeited"))


def on_refund(ctx: Context, fact: RefundIssued) -> None:
    book = ctx.state.customers.get(fact.customer_id)
    if book is None or not book.upfront_rate or book.right <= 0:
        return
    if not _within(ctx, book, ctx.day):
        return
    if fact.currency != book.currency:
        raise AccrualError(f"refund in {fact.currency} but the upfront commission on customer "
                           f"{fact.customer_id} was paid in {book.currency}; trailpay never "
                           "converts money")
    share, cur, rate = book.share, book.currency, book.upfront_rate
    unrounded = fact.amount * rate * share
    amount = min(round_money(unrounded, cur), book.right)
    if amount <= ZERO:
        return
    text = (f"Refund {fact.invoice_id} of {fmt(fact.amount, cur)} {cur} inside the clawback window: "
            f"{pct(rate)} upfront rate, your share {pct(share)}: {fmt(amount, cur)} clawed back")
    ctx.state.put(_claw(ctx, book, amount, text, base=fact.amount,
                                                  rate=rate, share=share, unrounded=unrounded))
