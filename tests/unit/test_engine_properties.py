"""Invariants of the plan engine, over random programmes that exercise every rule kind.

A programme is a stream of facts about a few customers and partners; it is
attributed with the core's own attribution functions and folded through
`accrue`, exactly as the ledger and accrual services do (without I/O).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit import deal, fact, plan
from trailpay.core.accrual import AccrualError, accrue, new_state, state_from_json, state_to_json
from trailpay.core.attribution import customer_after, entries_for, partners_of
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Enrollment, PlanBook
from trailpay.core.postings import COMPANY_ACCOUNT, NO_DATE, PostingGroup, add_partner_legs
from trailpay.core.statements import balances_as_of

PARTNERS = ("P0", "P1", "P2")
CUSTOMERS = ("C0", "C1", "C2", "C3")
START = date(2026, 1, 1)

ALL_RULES = [
    {"id": "anchor", "kind": "upfront", "base": "acv", "rate": "0.20", "cap": {"USD": "25000.00", "EUR": "23000.00"},
     "vesting": {"held_pct": "0.50", "release_on": ["onboarding_completed"], "within_days": 60}},
    {"id": "trail", "kind": "recurring", "rates_by_year": {"2": "0.05", "3": "0.07"}},
    {"id": "grow", "kind": "expansion", "rate": "0.10"},
    {"id": "usage", "kind": "usage", "rate": "0.03"},
    {"id": "onboarded", "kind": "milestone", "milestone": "onboarding_completed",
     "amount": {"USD": "500.00", "EUR": "450.00"}},
    {"id": "happy", "kind": "milestone", "milestone": "csat_scored", "min_score": 9,
     "amount": {"USD": "250.00", "EUR": "230.00"}},
    {"id": "refer", "kind": "referral", "amount": "200.00"},
    {"id": "mdf", "kind": "comarketing", "match_rate": "0.50", "cap_per_quarter": {"USD": "5000.00", "EUR": "4500.00"}},
    {"id": "volume", "kind": "volume_tiers", "tiers": [{"from": "0", "multiplier": "1.0"},
                                                       {"from": "150000", "multiplier": "1.2"}]},
]
BOOK = PlanBook([
    plan(ALL_RULES, effective_from="2025-01-01", hold_days=30,
         clawback={"window_days": 180, "mode": "pro_rata"}),
    plan([{**r, "rate": "0.10"} if r["id"] == "anchor" else r for r in ALL_RULES], version=2,
         effective_from="2026-07-01", hold_days=15, clawback={"window_days": 120, "mode": "full"}),
])

money = st.integers(min_value=0, max_value=30_000_000).map(lambda c: f"{Decimal(c) / 100:.2f}")
currency = st.sampled_from(["USD", "EUR"])


@st.composite
def shares(draw):
    chosen = draw(st.lists(st.sampled_from(PARTNERS), min_size=1, max_size=3, unique=True))
    if len(chosen) == 1:
        return [(chosen[0], "1")]
    cuts = sorted(draw(st.lists(st.integers(1, 99), min_size=len(chosen) - 1,
                                max_size=len(chosen) - 1, unique=True)))
    bounds = [0, *cuts, 100]
    return [(p, str(Decimal(bounds[i + 1] - bounds[i]) / 100)) for i, p in enumerate(chosen)]


@st.composite
def a_fact(draw, day: date):
    c = draw(st.sampled_from(CUSTOMERS))
    d = day.isoformat()
    kind = draw(st.sampled_from([
        "deal", "deal", "renewed", "expanded", "expansion_deal", "contracted", "churned", "usage",
        "refund", "milestone", "referral", "comarketing", "adjustment"]))
    cur = draw(currency)
    if kind in ("deal", "expansion_deal"):
        return deal(customer=c, acv=draw(money), kind="new" if kind == "deal" else "expansion",
                    start=d, term=draw(st.sampled_from([12, 24, 36])), currency=cur,
                    partners=draw(shares()), deal_id=f"D-{c}-{d}")
    if kind == "renewed":
        return fact("subscription.renewed", customer_id=c, contract_id="K", currency=cur,
                    arr=draw(money), period_start=d, period_end=(day + timedelta(days=365)).isoformat())
    if kind in ("expanded", "contracted"):
        return fact(f"subscription.{kind}", customer_id=c, currency=cur, delta_arr=draw(money),
                    effective_date=d)
    if kind == "churned":
        return fact("subscription.churned", customer_id=c, effective_date=d, reason="budget")
    if kind == "usage":
        return fact("usage.reported", customer_id=c, currency=cur, metric="calls", quantity="10",
                    revenue=draw(money), period_start=d, period_end=d)
    if kind == "refund":
        return fact("refund.issued", customer_id=c, currency=cur, amount=draw(money), invoice_id="I")
    if kind == "milestone":
        return fact("milestone.achieved", customer_id=c,
                    milestone=draw(st.sampled_from(["onboarding_completed", "csat_scored"])),
                    score=str(draw(st.integers(0, 10))))
    p = draw(st.sampled_from(PARTNERS))
    if kind == "referral":
        return fact("referral.qualified", partner_id=p, lead_id="L")
    if kind == "comarketing":
        return fact("comarketing.completed", partner_id=p, activity="webinar", currency=cur,
                    spend=draw(money))
    return fact("adjustment.posted", partner_id=p, currency=cur,
                amount=str(Decimal(draw(st.integers(-500_000, 500_000))) / 100),
                reason="ops", approved_by="ops")


@st.composite
def programmes(draw):
    n = draw(st.integers(min_value=1, max_value=40))
    day, out = START, []
    for _ in range(n):
        day += timedelta(days=draw(st.integers(0, 40)))
        out.append((day, draw(a_fact(day))))
    return out


def attribute(programme) -> list[LedgerEntry]:
    """The ledger's attribution, pure: facts before their deal are dropped (parking is tested
    in integration)."""
    customers: dict = {}
    entries: list[LedgerEntry] = []
    for seq, (day, f) in enumerate(programme, start=1):
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        cust = None if f.partner_level else customers.get(f.customer_id)
        who = partners_of(f, cust)
        if who is not None:
            entries += entries_for(seq, f"e{seq}", "test", at, f, who, cust.deal_id if cust else None)
        if not f.partner_level:
            after = customer_after(f, customers.get(f.customer_id))
            if after is not None:
                customers[f.customer_id] = after
    return entries


def fold(entries: list[LedgerEntry], through_json: bool = False):
    states: dict = {}
    groups: list[PostingGroup] = []
    refused = 0
    for e in entries:
        state = states.get(e.partner_id) or new_state(e.partner_id)
        if through_json:  # as the accrual service stores it between batches
            state = state_from_json(state_to_json(state))
        try:
            gs, states[e.partner_id] = accrue(state, e, BOOK, Enrollment(e.partner_id, "reseller", "p"))
        except AccrualError:
            refused += 1
            continue
        groups += gs
    return groups, states, refused


PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(programmes())
def test_every_group_balances_per_currency_and_carries_its_cause(programme):
    groups, _, _ = fold(attribute(programme))
    for g in groups:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for leg in g.legs:
            totals[leg.amount.currency] += leg.amount.amount
            assert leg.amount.amount == leg.amount.rounded().amount  # posted at minor units
        assert all(t == 0 for t in totals.values())
        assert g.event_id and g.explanation.rule_id and g.explanation.sentence
        assert g.explanation.plan_id == "p" and g.explanation.plan_version in (1, 2)


@PROPS
@given(programmes())
def test_replay_equals_live_even_through_stored_json_state(programme):
    entries = attribute(programme)
    live, live_states, _ = fold(entries, through_json=True)
    replayed, replay_states, _ = fold(entries)
    assert live == replayed
    assert {p: state_to_json(s) for p, s in live_states.items()} == \
           {p: state_to_json(s) for p, s in replay_states.items()}
    for s in live_states.values():  # the derived vesting index agrees with the books
        assert s.vesting_due == {c: b.vest_deadline for c, b in s.customers.items()
                                 if b.held and b.vest_deadline is not None}


@PROPS
@given(programmes())
def test_clawbacks_never_exceed_what_was_earned_less_forfeited(programme):
    groups, states, _ = fold(attribute(programme))
    for state in states.values():
        for book in state.customers.values():
            assert 0 <= book.clawed_back <= book.earned - book.forfeited
            assert book.held >= 0 and book.forfeited >= 0
    per_deal: dict = defaultdict(lambda: defaultdict(Decimal))  # (partner, deal) -> kind -> sum
    for g in groups:
        for leg in g.legs:
            if leg.account == COMPANY_ACCOUNT:
                continue
            kind = g.explanation.rule_kind
            if kind == "upfront":
                per_deal[(g.partner_id, g.deal_id)]["earned"] += leg.amount.amount
            elif leg.bucket in ("clawed_back", "forfeited"):
                per_deal[(g.partner_id, g.deal_id)][leg.bucket] += leg.amount.amount
    for sums in per_deal.values():
        assert sums["clawed_back"] <= sums["earned"] - sums["forfeited"]


@PROPS
@given(programmes())
def test_balances_from_postings_equal_the_engine_state(programme):
    entries = attribute(programme)
    groups, states, _ = fold(entries)
    last = max((e.time.date() for e in entries), default=START)
    for partner, state in states.items():
        rows = [(leg.amount.currency, leg.bucket, leg.available_on, leg.amount.amount)
                for g in groups if g.partner_id == partner for leg in g.legs
                if leg.account != COMPANY_ACCOUNT]
        b = balances_as_of(rows, last)
        for cur in ("USD", "EUR"):
            got = b.get(cur, {})
            assert got.get("payable", 0) == state.payable_on(cur, last)
            assert got.get("held", 0) == sum(
                (x.held for x in state.customers.values() if x.currency == cur), Decimal(0))
            assert got.get("pending", 0) == sum(
                (a for d, a in state.pending.get(cur, {}).items() if d > last), Decimal(0))


@PROPS
@given(programmes())
def test_month_sums_add_up_to_the_balances_and_to_each_months_legs(programme):
    """balance_months (a statement's opening) and balances are projected by one rule."""
    groups, _, _ = fold(attribute(programme))
    totals: dict = {}
    months: dict = {}
    add_partner_legs(totals, groups, months)
    folded: dict = defaultdict(Decimal)
    for (partner, month, *key), amount in months.items():
        assert month.day == 1
        folded[(partner, *key)] += amount
    assert {k: v for k, v in folded.items() if v} == {k: v for k, v in totals.items() if v}
    for (partner, month, currency, bucket, available_on), amount in months.items():
        assert amount == sum((leg.amount.amount for g in groups if g.partner_id == partner
                              and g.effective_at.date().replace(day=1) == month
                              for leg in g.legs if leg.account != COMPANY_ACCOUNT
                              and (leg.amount.currency, leg.bucket,
                                   leg.available_on or NO_DATE) == (currency, bucket,
                                                                     available_on)),
                             Decimal(0))


@PROPS
@given(programmes())
def test_no_float_anywhere_in_a_money_path(programme):
    groups, states, _ = fold(attribute(programme))
    for g in groups:
        for leg in g.legs:
            assert type(leg.amount.amount) is Decimal
        for f in fields(g.explanation):
            assert not isinstance(getattr(g.explanation, f.name), float)
    for s in states.values():
        assert "float" not in repr(state_to_json(s))  # JSON state holds strings, not numbers


@PROPS
@given(programmes(), st.sampled_from(PARTNERS))
def test_a_partners_results_do_not_depend_on_other_partners_events(programme, partner):
    entries = attribute(programme)
    together, _, _ = fold(entries)
    alone, _, _ = fold([e for e in entries if e.partner_id == partner])
    assert [g for g in together if g.partner_id == partner] == alone


@PROPS
@given(programmes())
def test_accrue_never_changes_the_state_it_is_given(programme):
    """Applied or refused, the state passed in is left exactly as it was (JSON and the live
    containers alike), so a refused entry leaves no trace and a kept state stays valid."""
    from tests.unit.test_engine_golden import state_lines

    states: dict = {}
    for e in attribute(programme):
        state = states.get(e.partner_id) or new_state(e.partner_id)
        before = state_lines(state)
        try:
            _, states[e.partner_id] = accrue(state, e, BOOK, Enrollment(e.partner_id, "reseller", "p"))
        except AccrualError:
            pass
        assert state_lines(state) == before
