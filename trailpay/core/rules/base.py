"""What every rule module shares: the context of one entry, and how money moves.

Rules compute amounts; this module turns them into balanced posting groups:
`earn` (company expense → partner held/pending), `move` (between the partner's
buckets) and `take` (a clawback: held, then pending, then payable). Group ids
derive from the entry and a counter, never from the clock or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from trailpay.core.journal import LedgerEntry
from trailpay.core.money import Money, round_money
from trailpay.core.plans import Amounts, Enrollment, PlanVersion, Rule, with_overrides
from trailpay.core.postings import COMPANY_ACCOUNT, EXPENSE, Explanation, Leg, PostingGroup
from trailpay.core.state import ZERO, CustomerBook, PartnerState


class AccrualError(ValueError):
    """The engine cannot apply an entry (its reason is dead-lettered, nothing posts)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fmt(amount: Decimal, currency: str) -> str:
    """7200 -> '7,200.00' (the currency's minor-unit digits, thousands separated)."""
    return f"{round_money(amount, currency):,f}"


def pct(rate: Decimal) -> str:
    """0.2 -> '20%', 0.075 -> '7.5%'."""
    return f"{(rate * 100).normalize():f}%"


def volume_text(multiplier: Decimal, volume: Decimal, currency: str) -> str:
    """The volume-tier clause of a sentence; empty when the multiplier changes nothing."""
    if multiplier == 1:
        return ""
    return (f" × volume multiplier {multiplier.normalize():f} (your attributed active ARR "
            f"{fmt(volume, currency)})")


def amount_in(amounts: Amounts, currency: str, rule: Rule, what: str) -> Decimal:
    value = amounts.get(currency)
    if value is None:
        raise AccrualError(f"rule {rule.id}: {what} is not defined in {currency} "
                           f"(defined in {', '.join(sorted(amounts.by_currency))}); "
                           "trailpay never converts money")
    return value


@dataclass
class Context:
    """One entry being applied to one partner under one plan version."""

    entry: LedgerEntry
    plan: PlanVersion
    enrollment: Enrollment
    state: PartnerState
    day: date
    groups: list[PostingGroup] = field(default_factory=list)

    @property
    def partner(self) -> str:
        return f"partner:{self.entry.partner_id}"

    def rules(self, kind: str) -> list[Rule]:
        """The plan's rules of a kind for this partner's type, with its overrides applied."""
        return [with_overrides(r, self.enrollment.overrides, self.plan.currency)
                for r in self.plan.rules_of(kind, self.enrollment.type)]

    def multiplier(self, currency: str) -> tuple[Decimal, Decimal]:
        """(volume multiplier, attributed active ARR in `currency`) before this entry applies."""
        volume = self.state.volume(currency)
        tiers = self.rules("volume_tiers")
        return (tiers[0].multiplier_at(volume) if tiers else Decimal(1)), volume

    def book(self) -> CustomerBook:
        cid = self.entry.customer_id or ""
        book = self.state.customers.get(cid)
        if book is None:
            raise AccrualError(f"customer {cid}: no deal.closed of this customer was attributed "
                               f"to partner {self.entry.partner_id}")
        return book

    def same_currency(self, book: CustomerBook, currency: str, what: str) -> None:
        """ARR lives in the contract's currency; a fact in another one would mix currencies."""
        if currency != book.currency:
            raise AccrualError(f"data.currency: {what} in {currency} but customer "
                               f"{book.customer_id}'s contract is in {book.currency}; "
                               "trailpay never converts money")

    def group(self, rule: Rule | str, kind: str, legs: list[Leg], sentence: str,
              customer: CustomerBook | None = None, **why: Decimal | None) -> PostingGroup:
        """Append a group; `customer` names the customer when it is not the entry's own."""
        rule_id = rule if isinstance(rule, str) else rule.id
        e = self.entry
        g = PostingGroup(
            group_id=f"{e.entry_id}:{rule_id}:{len(self.groups)}", entry_id=e.entry_id,
            journal_seq=e.journal_seq, event_id=e.event_id, event_type=e.fact.type,
            effective_at=e.time, partner_id=e.partner_id,
            customer_id=customer.customer_id if customer else e.customer_id,
            deal_id=customer.deal_id if customer else e.deal_id,
            explanation=Explanation(rule_id, kind, sentence, self.plan.plan_id, self.plan.version,
                                    **why),
            legs=tuple(legs))
        self.groups.append(g)
        return g

    # --- moving money -----------------------------------------------------------------------

    def earn(self, amount: Money, held: Decimal = ZERO) -> list[Leg]:
        """Company expense → partner: `held` to held, the rest pending until hold_days pass."""
        c = amount.currency
        legs = [Leg(COMPANY_ACCOUNT, EXPENSE, -amount)]
        if held:
            legs.append(Leg(self.partner, "held", Money(held, c)))
        rest = amount.amount - held
        if rest:
            legs.append(self.pend(Money(rest, c)))
        return legs

    def pend(self, amount: Money) -> Leg:
        due = self.day + timedelta(days=self.plan.payout.hold_days)
        lots = self.state.pending.setdefault(amount.currency, {})
        lots[due] = lots.get(due, ZERO) + amount.amount
        return Leg(self.partner, "pending", amount, available_on=due)

    def pay_now(self, amount: Money) -> Leg:
        self.state.add_payable(amount.currency, self.day, amount.amount)
        return Leg(self.partner, "payable", amount)

    def take(self, amount: Money, book: CustomerBook | None) -> tuple[list[Leg], CustomerBook | None]:
        """Claw `amount` back: the customer's held money first, then pending, then payable.

        Payable may go negative; it is netted against later earnings, never dropped.
        """
        c, left = amount.currency, amount.amount
        legs: list[Leg] = []
        if book is not None and book.held and book.currency == c:
            from_held = min(book.held, left)
            legs.append(Leg(self.partner, "held", Money(-from_held, c)))
            book = replace(book, held=book.held - from_held)
            left -= from_held
        lots = self.state.pending.get(c, {})
        for due in sorted(lots, reverse=True):  # money furthest from payment goes first
            if not left:
                break
            part = min(lots[due], left)
            if part <= 0:
                continue
            lots[due] -= part
            if not lots[due]:
                del lots[due]
            legs.append(Leg(self.partner, "pending", Money(-part, c), available_on=due))
            left -= part
        if left:
            self.state.add_payable(c, self.day, -left)
            legs.append(Leg(self.partner, "payable", Money(-left, c)))
        legs.append(Leg(self.partner, "clawed_back", amount))
        return legs, book

