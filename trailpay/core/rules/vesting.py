"""Vesting: held upfront money is released by a milestone in time, or forfeited.

Both are decided by event time: a release needs the milestone's time to fall on
or before the deadline; a forfeit happens at the first entry for the partner
dated after the deadline. A replay sees the same entries in the same order and
so decides the same, without any clock.
"""

from __future__ import annotations

from trailpay.core.effects import FORFEITED, RELEASED
from trailpay.core.facts import MilestoneAchieved
from trailpay.core.money import make_money
from trailpay.core.postings import make_leg
from trailpay.core.rules.base import Context, fmt
from trailpay.core.rules.upfront import milestones_text
from trailpay.core.state import CustomerBook, replace_book


def forfeit_expired(ctx: Context) -> None:
    """Forfeit held money whose deadline passed before this entry's date."""
    first, day = ctx.state.first_deadline(), ctx.day
    if first is None or first >= day:
        return
    due = sorted(c for c, deadline in ctx.state.vesting_due.items() if deadline < day)
    for cid in due:
        book = ctx.state.customers[cid]
        text = (f"Held {fmt(book.held, book.currency)} {book.currency} of the upfront commission "
                f"on customer {cid} forfeited: {milestones_text(book.release_on)} was not "
                f"achieved by {book.vest_deadline.isoformat()}")
        ctx.state.put(forfeit(ctx, book, text))


def forfeit(ctx: Context, book: CustomerBook, text: str) -> CustomerBook:
    """Move a customer's held money to forfeited; returns the updated book."""
    cur, held = book.currency, book.held
    g = ctx.group(book.upfront_rule or "vesting", "vesting",
                  [make_leg(ctx.partner, "held", make_money(-held, cur)),
                   make_leg(ctx.partner, "forfeited", make_money(held, cur))], text, customer=book)
    ctx.said(FORFEITED, group=g)
    return replace_book(book, held=held * 0, forfeited=book.forfeited + held)


def release(ctx: Context, fact: MilestoneAchieved) -> None:
    """A release milestone in time makes the customer's held money payable at once."""
    book = ctx.state.customers.get(fact.customer_id)
    if (book is None or not book.held or fact.milestone not in book.release_on
            or book.vest_deadline is None or ctx.day > book.vest_deadline):
        return
    cur, held = book.currency, book.held
    text = (f"{fact.milestone.replace('_', ' ').capitalize()} on {ctx.day.isoformat()}: "
            f"held {fmt(held, cur)} {cur} of the upfront commission released, payable now")
    g = ctx.group(book.upfront_rule or "vesting", "vesting",
                  [make_leg(ctx.partner, "held", make_money(-held, cur)),
                   ctx.pay_now(make_money(held, cur))], text)
    ctx.said(RELEASED, group=g)
    ctx.state.put(replace_book(book, held=held * 0))
