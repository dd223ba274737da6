"""A plan version in plain language, with worked examples the engine computes.

Partners are promised an explainer of how they earn and when they are paid. Prose
that quotes figures drifts from the plan the moment a rate changes, so every figure
here comes from folding made-up facts through the real engine (`fold.fold`, the same
fold that live accrual and the rebuild use) under the version being explained, and
reading the amounts off the resulting postings. The sentences around the figures are
built from the plan document. Rendering (HTML, Markdown) is the gateway's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from trailpay.core.facts import fact_from_data
from trailpay.core.fold import Folded, fold
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.plans import Amounts, Enrollment, PlanBook, PlanVersion, Rule
from trailpay.core.postings import COMPANY_ACCOUNT, PostingGroup
from trailpay.core.rules.base import fmt, pct
from trailpay.core.state import new_state

EXAMPLE_PARTNER = "EXAMPLE"
EXAMPLE_CUSTOMER = "C-EXAMPLE"
EXAMPLE_ACV = Decimal("100000")
ZERO = Decimal(0)

TITLES = {"upfront": "Upfront commission on new deals", "recurring": "Trailing commission on "
          "renewals", "expansion": "Commission on expansion", "usage": "Commission on usage",
          "milestone": "Milestone bonus", "referral": "Referral bonus",
          "comarketing": "Co-marketing match", "volume_tiers": "Volume tiers"}


class ExplainerError(ValueError):
    """The plan has no terms for the partner type asked for."""


@dataclass(frozen=True, slots=True)
class Example:
    """One worked example: what happened, what the engine posted, and its own line."""

    given: str
    outcome: str
    figures: Mapping[str, str] = field(default_factory=dict)  # name -> amount, as posted
    lines: tuple[str, ...] = ()  # the statement sentences the engine wrote


@dataclass(frozen=True, slots=True)
class Term:
    key: str  # rule id, or "clawback" / "payout"
    kind: str
    title: str
    statement: str
    applies_to: tuple[str, ...] = ()  # partner types; empty: every type the plan covers
    examples: tuple[Example, ...] = ()


@dataclass(frozen=True, slots=True)
class Explainer:
    plan_id: str
    version: int
    effective_from: date
    currency: str
    partner_type: str | None
    partner_types: tuple[str, ...]
    terms: tuple[Term, ...]


# --- the sandbox: made-up facts folded through the engine -----------------------------------


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _s(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else f"{v:f}" if isinstance(v, Decimal) else v


class Sandbox:
    """Facts for one made-up partner, folded from nothing under one plan version alone."""

    def __init__(self, plan: PlanVersion, partner_type: str) -> None:
        self.plan = plan
        self.book = PlanBook([plan])
        self.enrollment = Enrollment(EXAMPLE_PARTNER, partner_type, plan.plan_id, {})
        self.entries: list[LedgerEntry] = []

    def add(self, day: date, type_: str, **data: Any) -> LedgerEntry:
        f = fact_from_data(type_, {k: _s(v) for k, v in data.items()})
        n = len(self.entries) + 1
        customer = None if f.partner_level else getattr(f, "customer_id", None)
        e = LedgerEntry(f"{n}:{EXAMPLE_PARTNER}", n, f"example-{n}", "example", _at(day),
                        EXAMPLE_PARTNER, customer, getattr(f, "deal_id", None), Decimal(1),
                        None, f, _at(day))
        self.entries.append(e)
        return e

    def deal(self, day: date, currency: str, acv: Decimal = EXAMPLE_ACV, term: int = 12,
             customer: str = EXAMPLE_CUSTOMER) -> LedgerEntry:
        return self.add(day, "deal.closed", deal_id=f"D-{customer}", customer_id=customer,
                        kind="new", currency=currency, acv=acv, tcv=acv * term / 12,
                        term_months=term, start_date=day, partners=[
                            {"partner_id": EXAMPLE_PARTNER, "role": "sourced", "share": "1"}])

    def run(self) -> Folded:
        return fold(new_state(EXAMPLE_PARTNER), sorted(self.entries, key=sort_key),
                    lambda e, seen=0: (self.book, self.enrollment))


def _groups(out: Folded, entry: LedgerEntry, rule_id: str | None = None) -> list[PostingGroup]:
    return [g for g in out.groups if g.entry_id == entry.entry_id
            and (rule_id is None or g.explanation.rule_id == rule_id)]


def _into(groups: list[PostingGroup], *buckets: str) -> Decimal:
    """What the groups put into these partner buckets (positive legs only)."""
    return sum((leg.amount.amount for g in groups for leg in g.legs
                if leg.account != COMPANY_ACCOUNT and leg.bucket in buckets
                and leg.amount.amount > 0), ZERO)


def _earned(groups: list[PostingGroup]) -> Decimal:
    """What the groups earned: the company's expense legs, negated."""
    return -sum((leg.amount.amount for g in groups for leg in g.legs
                 if leg.account == COMPANY_ACCOUNT), ZERO)


def _refusal(out: Folded, entry: LedgerEntry) -> str | None:
    """Why the engine refused the example's fact, or a fact before it (say the deal that
    sets it up): the example then shows the reason, not a made-up figure."""
    for e, why in out.refused:
        if e.journal_seq <= entry.journal_seq:
            return why if e is entry else f"{e.fact.type} of the example: {why}"
    return None


def _lines(groups: list[PostingGroup]) -> tuple[str, ...]:
    return tuple(g.explanation.sentence for g in groups)


def _money(amount: Decimal, currency: str) -> str:
    return f"{fmt(amount, currency)} {currency}"


def _amounts(a: Amounts | None) -> str:
    if a is None:
        return ""
    return " / ".join(_money(v, c) for c, v in sorted(a.by_currency.items()))


def _currency_of(plan: PlanVersion, *amounts: Amounts | None) -> str:
    """The example's currency: the plan's, unless a flat amount is not defined in it."""
    for a in amounts:
        if a is not None and plan.currency not in a.by_currency:
            return sorted(a.by_currency)[0]
    return plan.currency


def _refused(given: str, why: str) -> Example:
    return Example(given, f"the engine refuses this: {why}")


# --- one explainer per rule kind ------------------------------------------------------------


def _upfront(plan: PlanVersion, rule: Rule, ptype: str, start: date) -> Term:
    assert rule.rate is not None
    text = f"On a new deal you earn {pct(rule.rate)} of the deal's {rule.base.upper()}"
    if rule.cap:
        text += f", at most {_amounts(rule.cap)} per deal"
    text += " (times your share where a deal is split between partners)."
    v = rule.vesting
    if v:
        text += (f" {pct(v.held_pct)} of it is held until the customer reaches "
                 f"{_milestones(v.release_on)} within {v.within_days} days of the contract start; "
                 "reached in time, it is released at once; otherwise it is forfeited.")
    cur = _currency_of(plan, rule.cap)
    examples = [_upfront_example(plan, rule, ptype, start, cur, EXAMPLE_ACV)]
    cap = rule.cap.get(cur) if rule.cap else None
    if cap is not None and rule.rate and EXAMPLE_ACV * rule.rate <= cap:
        examples.append(_upfront_example(plan, rule, ptype, start, cur,
                                         (cap / rule.rate * 2).quantize(Decimal(1))))
    if v:
        examples.extend(_vesting_examples(plan, rule, ptype, start, cur))
    return Term(rule.id, rule.kind, TITLES[rule.kind], text, rule.partner_types, tuple(examples))


def _upfront_example(plan: PlanVersion, rule: Rule, ptype: str, start: date, cur: str,
                     acv: Decimal) -> Example:
    box = Sandbox(plan, ptype)
    term = 36 if rule.base == "tcv" else 12
    e = box.deal(start, cur, acv, term)
    given = (f"close a new {term}-month deal with ACV {_money(acv, cur)}"
             + (f" (TCV {_money(acv * term / 12, cur)})" if rule.base == "tcv" else ""))
    out = box.run()
    why = _refusal(out, e)
    if why:
        return _refused(given, why)
    groups = _groups(out, e, rule.id)
    earned, held = _earned(groups), _into(groups, "held")
    outcome = f"{_money(earned, cur)} upfront"
    if held:
        assert rule.vesting is not None
        outcome += (f", {_money(held, cur)} of it held until {_milestones(rule.vesting.release_on)}"
                    f" is reached within {rule.vesting.within_days} days")
    due = _due(groups)
    if due:
        outcome += f"; {_money(_into(groups, 'pending'), cur)} becomes payable on {due}"
    return Example(given, outcome, {"earned": fmt(earned, cur), "held": fmt(held, cur)},
                   _lines(groups))


def _vesting_examples(plan: PlanVersion, rule: Rule, ptype: str, start: date,
                      cur: str) -> list[Example]:
    v = rule.vesting
    assert v is not None
    milestone = v.release_on[0]
    deadline = start + timedelta(days=v.within_days)
    made = Sandbox(plan, ptype)
    made.deal(start, cur)
    hit = made.add(deadline - timedelta(days=1), "milestone.achieved",
                   customer_id=EXAMPLE_CUSTOMER, milestone=milestone)
    out = made.run()
    released = -sum((leg.amount.amount for g in _groups(out, hit, rule.id) for leg in g.legs
                     if leg.account != COMPANY_ACCOUNT and leg.bucket == "held"), ZERO)
    first = Example(f"the same deal, and {_milestone_name(milestone)} on "
                    f"{(deadline - timedelta(days=1)).isoformat()}, a day before the deadline",
                    f"{_money(released, cur)} released from held", {"released": fmt(released, cur)},
                    _lines(_groups(out, hit, rule.id)))
    missed = Sandbox(plan, ptype)
    missed.deal(start, cur)
    # Held money is forfeited at the first entry after the deadline; a contraction posts
    # nothing of its own, so it is the plainest such entry.
    later = missed.add(deadline + timedelta(days=1), "subscription.contracted",
                       customer_id=EXAMPLE_CUSTOMER, currency=cur, delta_arr="1",
                       effective_date=deadline + timedelta(days=1))
    out = missed.run()
    groups = _groups(out, later)
    lost = _into(groups, "forfeited")
    second = Example(f"the same deal, and no {_milestone_name(milestone)} by "
                     f"{deadline.isoformat()}", f"{_money(lost, cur)} forfeited",
                     {"forfeited": fmt(lost, cur)}, _lines(groups))
    return [first, second]


def _due(groups: list[PostingGroup]) -> str | None:
    days = sorted({leg.available_on for g in groups for leg in g.legs
                   if leg.bucket == "pending" and leg.available_on and leg.amount.amount > 0})
    return days[0].isoformat() if days else None


def _milestone_name(name: str) -> str:
    return name.replace("_", " ")


def _milestones(names: tuple[str, ...]) -> str:
    return " or ".join(_milestone_name(n) for n in names)


def _year_text(rule: Rule) -> str:
    years = rule.rates_by_year
    parts = [f"year {y}: {pct(r)}" for y, r in years[:-1]]
    y, r = years[-1]
    parts.append(f"year {y} and after: {pct(r)}")
    return "; ".join(parts)


def _recurring(plan: PlanVersion, rule: Rule, ptype: str, start: date, tiers: Rule | None
               ) -> Term:
    text = ("When a customer renews, you earn a share of the renewed ARR that depends on the "
            f"customer's tenure year ({_year_text(rule)}).")
    if tiers:
        text += " It is multiplied by your volume tier."
    cur = plan.currency
    box = Sandbox(plan, ptype)
    box.deal(start, cur)
    years = [y for y, _ in rule.rates_by_year if y >= 2]
    years.append(max([*years, 1]) + 1)  # one past the last: the last rate applies beyond
    renewals = []
    for y in years:
        period = _years_after(start, y - 1)
        renewals.append((y, box.add(period, "subscription.renewed", customer_id=EXAMPLE_CUSTOMER,
                                    contract_id="K-EXAMPLE", currency=cur, arr=EXAMPLE_ACV,
                                    period_start=period,
                                    period_end=_years_after(start, y) - timedelta(days=1))))
    out = box.run()
    examples = []
    for y, e in renewals:
        given = (f"a customer who signed on {start.isoformat()} (12 months) renews on "
                 f"{_years_after(start, y - 1).isoformat()} at ARR {_money(EXAMPLE_ACV, cur)}: "
                 f"tenure year {y}")
        why = _refusal(out, e)
        if why:
            examples.append(_refused(given, why))
            continue
        groups = _groups(out, e, rule.id)
        earned = _earned(groups)
        examples.append(Example(given, f"{_money(earned, cur)}", {"earned": fmt(earned, cur)},
                                _lines(groups)))
    return Term(rule.id, rule.kind, TITLES[rule.kind], text, rule.partner_types, tuple(examples))


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _one_fact(plan: PlanVersion, rule: Rule, ptype: str, start: date, text: str, given: str,
              cur: str, add: Any, deal: bool = True) -> Term:
    """A rule shown by one fact after (optionally) a deal: what that fact earns."""
    box = Sandbox(plan, ptype)
    if deal:
        box.deal(start, cur)
    e = add(box)
    out = box.run()
    why = _refusal(out, e)
    if why:
        example = _refused(given, why)
    else:
        groups = _groups(out, e, rule.id)
        earned = _earned(groups)
        example = Example(given, _money(earned, cur), {"earned": fmt(earned, cur)},
                          _lines(groups))
    return Term(rule.id, rule.kind, TITLES[rule.kind], text, rule.partner_types, (example,))


def _expansion(plan: PlanVersion, rule: Rule, ptype: str, start: date, tiers: Rule | None
               ) -> Term:
    assert rule.rate is not None
    text = (f"When a customer grows (an expansion deal, or an increase of its ARR), you earn "
            f"{pct(rule.rate)} of the added ARR" + (", times your volume tier." if tiers else "."))
    cur, delta, day = plan.currency, Decimal("20000"), start + timedelta(days=30)
    return _one_fact(plan, rule, ptype, start, text,
                     f"a customer with ARR {_money(EXAMPLE_ACV, cur)} adds "
                     f"{_money(delta, cur)} of ARR on {day.isoformat()}", cur,
                     lambda box: box.add(day, "subscription.expanded",
                                         customer_id=EXAMPLE_CUSTOMER, currency=cur,
                                         delta_arr=delta, effective_date=day))


def _usage(plan: PlanVersion, rule: Rule, ptype: str, start: date) -> Term:
    assert rule.rate is not None
    text = f"When a customer's usage is billed, you earn {pct(rule.rate)} of the usage revenue."
    cur, revenue, day = plan.currency, Decimal("10000"), start + timedelta(days=30)
    return _one_fact(plan, rule, ptype, start, text,
                     f"usage revenue of {_money(revenue, cur)} billed on {day.isoformat()}", cur,
                     lambda box: box.add(day, "usage.reported", customer_id=EXAMPLE_CUSTOMER,
                                         currency=cur, metric="usage", quantity="1",
                                         revenue=revenue, period_start=start, period_end=day))


def _milestone(plan: PlanVersion, rule: Rule, ptype: str, start: date) -> Term:
    name = _milestone_name(rule.milestone or "")
    text = f"When a customer reaches {name}"
    if rule.min_score is not None:
        text += f" with a score of at least {rule.min_score.normalize():f}"
    text += f", you earn a one-off {_amounts(rule.amount)} (once per customer)."
    cur = _currency_of(plan, rule.amount)
    day = start + timedelta(days=30)
    score = {"score": rule.min_score} if rule.min_score is not None else {}
    return _one_fact(plan, rule, ptype, start, text,
                     f"a customer (its deal in {cur}) reaches {name}"
                     + (f" with a score of {rule.min_score.normalize():f}" if score else "")
                     + f" on {day.isoformat()}", cur,
                     lambda box: box.add(day, "milestone.achieved", customer_id=EXAMPLE_CUSTOMER,
                                         milestone=rule.milestone, **score))


def _referral(plan: PlanVersion, rule: Rule, ptype: str, start: date) -> Term:
    text = f"Each qualified referral earns {_amounts(rule.amount)}."
    cur = _currency_of(plan, rule.amount)
    return _one_fact(plan, rule, ptype, start, text,
                     f"a lead you referred qualifies on {start.isoformat()}", cur,
                     lambda box: box.add(start, "referral.qualified", partner_id=EXAMPLE_PARTNER,
                                         lead_id="L-EXAMPLE"), deal=False)


def _comarketing(plan: PlanVersion, rule: Rule, ptype: str, start: date) -> Term:
    assert rule.match_rate is not None
    text = f"Co-marketing spend is matched at {pct(rule.match_rate)}"
    text += (f", at most {_amounts(rule.cap_per_quarter)} per calendar quarter."
             if rule.cap_per_quarter else ".")
    cur = _currency_of(plan, rule.cap_per_quarter)
    cap = rule.cap_per_quarter.get(cur) if rule.cap_per_quarter else None
    first = Decimal("4000")
    if cap is not None and rule.match_rate:
        first = (cap / rule.match_rate * Decimal("0.6")).quantize(Decimal(1))
    box = Sandbox(plan, ptype)
    spends = [(start, first)]
    if cap is not None:
        spends.append((start + timedelta(days=7), first))  # same quarter: the cap binds
    entries = [box.add(day, "comarketing.completed", partner_id=EXAMPLE_PARTNER,
                       activity="webinar", currency=cur, spend=spend) for day, spend in spends]
    out = box.run()
    examples = []
    for (day, spend), e in zip(spends, entries, strict=True):
        given = f"you spend {_money(spend, cur)} on a webinar on {day.isoformat()}"
        if e is not entries[0]:
            given += " (the same quarter as the one before)"
        why = _refusal(out, e)
        if why:
            examples.append(_refused(given, why))
            continue
        groups = _groups(out, e, rule.id)
        earned = _earned(groups)
        examples.append(Example(given, _money(earned, cur), {"earned": fmt(earned, cur)},
                                _lines(groups)))
    return Term(rule.id, rule.kind, TITLES[rule.kind], text, rule.partner_types, tuple(examples))


def _volume(plan: PlanVersion, rule: Rule, ptype: str, start: date,
            shown_by: Rule | None) -> Term:
    tiers = "; ".join(f"from {_money(t.start, plan.currency)}: ×{t.multiplier.normalize():f}"
                      for t in rule.tiers)
    text = ("Renewal and expansion commissions are multiplied by a tier set by your attributed "
            f"active ARR (the ARR of your active customers times your share) before the fact: "
            f"{tiers}.")
    examples = []
    if shown_by is not None:  # an expansion rule: one example per tier
        cur, delta = plan.currency, Decimal("10000")
        for i, t in enumerate(rule.tiers):
            nxt = rule.tiers[i + 1].start if i + 1 < len(rule.tiers) else None
            acv = t.start if t.start else (min(EXAMPLE_ACV, nxt / 2) if nxt else EXAMPLE_ACV)
            box = Sandbox(plan, ptype)
            box.deal(start, cur, acv)
            day = start + timedelta(days=30)
            e = box.add(day, "subscription.expanded", customer_id=EXAMPLE_CUSTOMER, currency=cur,
                        delta_arr=delta, effective_date=day)
            out = box.run()
            given = (f"with {_money(acv, cur)} of attributed active ARR, a customer adds "
                     f"{_money(delta, cur)} of ARR")
            why = _refusal(out, e)
            if why:
                examples.append(_refused(given, why))
                continue
            groups = _groups(out, e, shown_by.id)
            earned = _earned(groups)
            mult = next((g.explanation.multiplier for g in groups
                         if g.explanation.multiplier is not None), Decimal(1))
            examples.append(Example(given, f"{_money(earned, cur)} (×{mult.normalize():f}, "
                                    f"rule {shown_by.id})",
                                    {"earned": fmt(earned, cur),
                                     "multiplier": f"{mult.normalize():f}"}, _lines(groups)))
    return Term(rule.id, rule.kind, TITLES[rule.kind], text, rule.partner_types, tuple(examples))


def _clawback(plan: PlanVersion, upfront: Rule | None, ptype: str, start: date) -> Term:
    cb = plan.clawback
    if not cb.window_days:
        return Term("clawback", "clawback", "Clawback",
                    "There is no clawback: upfront commission stays earned when a customer leaves.")
    how = ("in full" if cb.mode == "full" else
           "in proportion to the unserved whole months of the contract term")
    text = (f"If a customer churns within {cb.window_days} days of the contract start, the upfront "
            f"commission you still hold a right to is reversed {how}. A refund within the "
            "window reverses the refund times the upfront rate. Held money is taken first, then "
            "pending, then payable; a balance that goes negative is netted against later "
            "earnings.")
    examples: tuple[Example, ...] = ()
    if upfront is not None:
        cur = _currency_of(plan, upfront.cap)
        # Before any vesting deadline: the churn, not a forfeiture, is what the example shows.
        days = min(cb.window_days - 1, 105,
                   upfront.vesting.within_days - 1 if upfront.vesting else 105)
        box = Sandbox(plan, ptype)
        deal = box.deal(start, cur)
        churn_day = start + timedelta(days=days)
        e = box.add(churn_day, "subscription.churned", customer_id=EXAMPLE_CUSTOMER,
                    effective_date=churn_day, reason="budget")
        out = box.run()
        given = (f"a 12-month deal with ACV {_money(EXAMPLE_ACV, cur)} signed on "
                 f"{start.isoformat()} churns on {churn_day.isoformat()} ({days} days later)")
        why = _refusal(out, e)
        if why:
            examples = (_refused(given, why),)
        else:
            earned = _earned(_groups(out, deal, upfront.id))
            groups = _groups(out, e)
            back = _into(groups, "clawed_back")
            examples = (Example(given, f"{_money(back, cur)} of the {_money(earned, cur)} upfront "
                                "is clawed back", {"earned": fmt(earned, cur),
                                                   "clawed_back": fmt(back, cur)},
                                _lines(groups)),)
    return Term("clawback", "clawback", "Clawback", text, (), examples)


CADENCE = {"monthly": "every month", "quarterly": "every quarter",
           "on_demand": "when a payout run is asked for"}


def _payout(plan: PlanVersion, ptype: str, start: date) -> Term:
    po = plan.payout
    text = (f"Money you earn is pending for {po.hold_days} days after the date of the fact that "
            f"earned it, then payable. Payouts run {CADENCE.get(po.cadence, po.cadence)} and pay "
            f"each currency whose payable balance is at least {_amounts(po.minimum)}; a smaller "
            "balance waits for the next run. An open dispute holds your payouts until it is "
            "resolved.")
    due = start + timedelta(days=po.hold_days)
    example = Example(f"commission earned from a fact dated {start.isoformat()}",
                      f"payable from {due.isoformat()}, paid by the first payout run from then on "
                      f"once your payable balance is at least {_amounts(po.minimum)}")
    return Term("payout", "payout", "Payout terms", text, (), (example,))


# --- the explainer --------------------------------------------------------------------------


def _type_for(plan: PlanVersion, rule: Rule | None, partner_type: str | None) -> str:
    if partner_type:
        return partner_type
    if rule is not None and rule.partner_types:
        return rule.partner_types[0]
    return plan.partner_types[0] if plan.partner_types else "partner"


def explain(plan: PlanVersion, partner_type: str | None = None) -> Explainer:
    """The plan version's terms for a partner type (None: every type, each rule saying whom
    it applies to), each with examples folded through the engine."""
    if partner_type and plan.partner_types and partner_type not in plan.partner_types:
        raise ExplainerError(f"plan {plan.plan_id} version {plan.version} has no terms for "
                             f"partner type {partner_type!r}; it covers "
                             f"{', '.join(plan.partner_types)}")
    rules = [r for r in plan.rules if partner_type is None or r.applies_to(partner_type)]
    start = plan.effective_from
    tiers = next((r for r in rules if r.kind == "volume_tiers"), None)
    terms: list[Term] = []
    for rule in rules:
        ptype = _type_for(plan, rule, partner_type)
        if rule.kind == "upfront":
            terms.append(_upfront(plan, rule, ptype, start))
        elif rule.kind == "recurring":
            terms.append(_recurring(plan, rule, ptype, start, tiers))
        elif rule.kind == "expansion":
            terms.append(_expansion(plan, rule, ptype, start, tiers))
        elif rule.kind == "usage":
            terms.append(_usage(plan, rule, ptype, start))
        elif rule.kind == "milestone":
            terms.append(_milestone(plan, rule, ptype, start))
        elif rule.kind == "referral":
            terms.append(_referral(plan, rule, ptype, start))
        elif rule.kind == "comarketing":
            terms.append(_comarketing(plan, rule, ptype, start))
        elif rule.kind == "volume_tiers":
            shown_by = next((r for r in rules if r.kind == "expansion"
                             and r.applies_to(ptype)), None)
            terms.append(_volume(plan, rule, ptype, start, shown_by))
    upfront = next((r for r in rules if r.kind == "upfront"), None)
    ptype = _type_for(plan, upfront, partner_type)
    terms.append(_clawback(plan, upfront, ptype, start))
    terms.append(_payout(plan, ptype, start))
    return Explainer(plan.plan_id, plan.version, plan.effective_from, plan.currency,
                     partner_type, plan.partner_types, tuple(terms))
