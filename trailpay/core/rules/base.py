"""What every rule module shares: the context of one entry, and how money moves.

Rules compute amounts; this module turns them into balanced posting groups:
`earn` (company expense → partner held/pending), `move` (between the partner's
buckets) and `take` (a clawback: held, then pending, then payable). Group ids
derive from the entry and a counter, never from the clock or randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from trailpay.core.effects import Effect
from trailpay.core.journal import LedgerEntry
from trailpay.core.money import Money, make_money, round_money
from trailpay.core.plans import Amounts, Enrollment, PlanVersion, Rule, with_overrides
from trailpay.core.postings import (
    COMPANY_ACCOUNT, EXPENSE, Leg, PostingGroup, make_explanation, make_group, make_leg,
)
from trailpay.core.state import ZERO, CustomerBook, PartnerState, Payout, replace_book


# One volume read to pick a multiplier: (currency, attributed active ARR, the tier table).
VolumeRead = tuple[str, Decimal, Rule]


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
    try:
        text = _PCT.get(rate)
    except TypeError:  # unhashable (a signalling NaN): let the arithmetic say what is wrong
        text = None
    if text is None:
        text = f"{(rate * 100).normalize():f}%"
        if rate and len(_PCT) < 4096:  # not zero: 0 and -0 are one key but print differently
            _PCT[rate] = text
    return text


# pct of the rates and shares seen so far: equal Decimals print the same once normalized.
_PCT: dict[Decimal, str] = {}


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


# Rules per (plan version, kind, partner type), chosen once: plans are immutable values, and
# each entry is kept with its plan so that its id is never reused while it is remembered.
_RULES: dict[tuple[int, str, str], tuple[PlanVersion, tuple[Rule, ...]]] = {}
_RULES_MAX = 4096


def _rules_of(plan: PlanVersion, kind: str, partner_type: str) -> tuple[Rule, ...]:
    key = (id(plan), kind, partner_type)
    hit = _RULES.get(key)
    if hit is not None and hit[0] is plan:
        return hit[1]
    rules = tuple(plan.rules_of(kind, partner_type))
    if len(_RULES) >= _RULES_MAX:
        _RULES.clear()
    _RULES[key] = (plan, rules)
    return rules


class Context:
    """One entry being applied to one partner under one plan version."""

    __slots__ = ("entry", "plan", "enrollment", "state", "day", "groups", "partner", "_due",
                 "effects", "recorded", "volumes")

    def __init__(self, entry: LedgerEntry, plan: PlanVersion, enrollment: Enrollment,
                 state: PartnerState, day: date, groups: list[PostingGroup] | None = None,
                 recorded: dict[str, Payout] | None = None,
                 volumes: list[VolumeRead] | None = None) -> None:
        self.entry = entry
        # When given, every volume this entry reads to pick a tier multiplier is appended
        # to it (core.timeline: a re-fold may stop early when no later tier would change).
        self.volumes = volumes
        self.effects: list[Effect] = []
        # Payouts already made, by id, when this entry is folded again (a re-fold after a
        # late entry): a payout run then pays exactly what it paid the first time.
        self.recorded = recorded
        self.plan = plan
        self.enrollment = enrollment
        self.state = state
        self.day = day
        self.groups: list[PostingGroup] = [] if groups is None else groups
        self.partner = f"partner:{entry.partner_id}"  # the partner's account
        self._due: date | None = None  # when money pended now becomes payable

    def rules(self, kind: str) -> Sequence[Rule]:
        """The plan's rules of a kind for this partner's type, with its overrides applied."""
        rules = _rules_of(self.plan, kind, self.enrollment.type)
        overrides = self.enrollment.overrides
        if not overrides and overrides is not None:
            return rules
        return [with_overrides(r, overrides, self.plan.currency) for r in rules]

    def multiplier(self, currency: str) -> tuple[Decimal, Decimal]:
        """(volume multiplier, attributed active ARR in `currency`) before this entry applies."""
        volume = self.state.volume_value(currency)
        tiers = self.rules("volume_tiers")
        if not tiers:
            return Decimal(1), volume
        if self.volumes is not None:
            self.volumes.append((currency, volume, tiers[0]))
        return tiers[0].multiplier_at(volume), volume

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

    def group(self, rule: Rule | str, kind: str, legs: Sequence[Leg], sentence: str,
              customer: CustomerBook | None = None, base: Decimal | None = None,
              rate: Decimal | None = None, multiplier: Decimal | None = None,
              share: Decimal | None = None, unrounded: Decimal | None = None) -> PostingGroup:
        """Append a group; `customer` names the customer when it is not the entry's own."""
        rule_id = rule if isinstance(rule, str) else rule.id
        e = self.entry
        plan = self.plan
        groups = self.groups
        g = make_group(
            f"{e.entry_id}:{rule_id}:{len(groups)}", e.entry_id, e.journal_seq, e.event_id,
            e.fact.type, e.time, e.partner_id,
            customer.customer_id if customer else e.customer_id,
            customer.deal_id if customer else e.deal_id,
            make_explanation(rule_id, kind, sentence, plan.plan_id, plan.version, base, rate,
                             multiplier, share, unrounded),
            tuple(legs))
        groups.append(g)
        return g

    def said(self, kind: str, payout: Payout | None = None, group: PostingGroup | None = None,
             detail: str | None = None) -> None:
        """Say what happened (effects.py), for the projections and metrics."""
        self.effects.append(Effect(kind, self.entry, payout, group.group_id if group else None,
                                   detail))

    # --- moving money -----------------------------------------------------------------------

    def earn(self, amount: Money, held: Decimal = ZERO) -> tuple[Leg, ...]:
        """Company expense → partner: `held` to held, the rest pending until hold_days pass."""
        c = amount.currency
        expense = make_leg(COMPANY_ACCOUNT, EXPENSE, make_money(-amount.amount, c), None)
        rest = amount.amount - held
        if held:
            held_leg = make_leg(self.partner, "held", make_money(held, c), None)
            if rest:
                return expense, held_leg, self.pend(make_money(rest, c))
            return expense, held_leg
        if rest:
            return expense, self.pend(make_money(rest, c))
        return (expense,)

    def pend(self, amount: Money) -> Leg:
        due = self._due
        if due is None:
            due = self._due = self.day + timedelta(days=self.plan.payout.hold_days)
        self.state.add_pending(amount.currency, due, amount.amount)
        return make_leg(self.partner, "pending", amount, due)

    def pay_now(self, amount: Money) -> Leg:
        self.state.add_payable(amount.currency, self.day, amount.amount)
        return make_leg(self.partner, "payable", amount, None)

    def take(self, amount: Money, book: CustomerBook | None) -> tuple[list[Leg], CustomerBook | None]:
        """Claw `amount` back: the customer's held money first, then pending, then payable.

        Payable may go negative; it is netted against later earnings, never dropped.
        """
        c, left = amount.currency, amount.amount
        legs: list[Leg] = []
        partner = self.partner
        if book is not None and book.held and book.currency == c:
            from_held = min(book.held, left)
            legs.append(make_leg(partner, "held", make_money(-from_held, c), None))
            book = replace_book(book, held=book.held - from_held)
            left -= from_held
        lots = self.state.own_lots(c) if c in self.state.pending else {}
        for due in sorted(lots, reverse=True):  # money furthest from payment goes first
            if not left:
                break
            part = min(lots[due], left)
            if part <= 0:
                continue
            lots[due] -= part
            if not lots[due]:
                del lots[due]
            legs.append(make_leg(partner, "pending", make_money(-part, c), due))
            left -= part
        if left:
            self.state.add_payable(c, self.day, -left)
            legs.append(make_leg(partner, "payable", make_money(-left, c), None))
        legs.append(make_leg(partner, "clawed_back", amount, None))
        return legs, book
