"""Payout runs, confirmations and disputes in the pure engine, every number worked out here.

Plan: upfront 10% of ACV, hold 30 days, payout minimum 100.00 USD and 50.00 EUR (no JPY).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.kit import Ledger, at, deal, fact, plan
from trailpay.core.accrual import AccrualError, accrue, new_state, state_from_json, state_to_json
from trailpay.core.facts import (
    COMMAND_SOURCE, DisputeOpened, DisputeResolved, PayoutConfirmed, PayoutFailed,
    PayoutRunRequested,
)
from trailpay.core.journal import LedgerEntry
from trailpay.core.payouts import Schedulable, due_runs, period_end, run_id
from trailpay.core.plans import Enrollment, PlanBook

RULES = [{"id": "anchor", "kind": "upfront", "base": "acv", "rate": "0.10"}]
MINIMUM = {"USD": "100.00", "EUR": "50.00"}


def ledger() -> Ledger:
    return Ledger([plan(RULES, minimum=MINIMUM)])


def command(led: Ledger, f, when: str, partner: str = "P1", source: str = COMMAND_SOURCE):
    """Apply a command the way the accrual service does (partner-level, from the gateway)."""
    led.seq += 1
    e = LedgerEntry(f"{led.seq}:{partner}", led.seq, f"c{led.seq}", source, at(when), partner,
                    None, None, D(1), "owner", f)
    groups, led.states[partner] = accrue(led.states.get(partner) or new_state(partner), e,
                                         PlanBook(led.plans), Enrollment(partner, "reseller", "p"))
    led.groups.extend(groups)
    return groups


def run(led: Ledger, as_of: str, partner: str = "P1"):
    day = date.fromisoformat(as_of)
    return command(led, PayoutRunRequested(partner, run_id(day), day), f"{as_of}T23:59:59", partner)


def adjust(led: Ledger, amount: str, day: str, currency: str = "USD", partner: str = "P1"):
    return led.apply(fact("adjustment.posted", partner_id=partner, currency=currency,
                          amount=amount, reason="goodwill", approved_by="ops"), day, partner)


def eod(day: str) -> str:
    return f"{day}T23:59:59"


def test_a_run_pays_what_was_payable_at_the_end_of_as_of():
    led = ledger()
    led.apply(deal(acv="100000.00"), "2026-01-10")  # 10% = 10,000.00 pending until 2026-02-09
    assert run(led, "2026-01-31") == []  # still pending then: nothing to pay
    [g] = run(led, "2026-02-28")
    pid = "run-2026-02-28:P1:USD"
    assert [(leg.bucket, leg.amount.amount) for leg in g.legs] == [
        ("payable", D("-10000.00")), ("in_payout", D("10000.00"))]
    assert pid in g.explanation.sentence and "10,000.00 USD" in g.explanation.sentence
    assert led.states["P1"].payouts[pid].status == "in_payout"
    assert led.balances(as_of=eod("2026-02-28")) == {"in_payout": D("10000.00")}


def test_the_same_run_twice_or_an_earlier_one_pays_nothing_more():
    led = ledger()
    adjust(led, "500.00", "2026-02-01")
    assert len(run(led, "2026-02-28")) == 1
    adjust(led, "300.00", "2026-02-10")  # late, dated before the run: waits for the next one
    assert run(led, "2026-02-28") == [] and run(led, "2026-02-15") == []
    assert led.balances() == {"payable": D("300.00"), "in_payout": D("500.00")}
    [g] = run(led, "2026-03-31")
    assert g.legs[1].amount.amount == D("300.00")


def test_minimum_per_currency_and_no_minimum_means_not_paid():
    led = ledger()
    adjust(led, "99.99", "2026-02-01")  # under the USD minimum of 100.00
    adjust(led, "50.00", "2026-02-01", "EUR")  # exactly the EUR minimum
    adjust(led, "90000", "2026-02-01", "JPY")  # the plan defines no JPY minimum: never converted
    groups = run(led, "2026-02-28")
    assert [(g.legs[1].amount.currency, g.legs[1].amount.amount) for g in groups] == [
        ("EUR", D("50.00"))]
    assert led.balances(currency="USD") == {"payable": D("99.99")}
    assert led.balances(currency="JPY") == {"payable": D("90000")}
    adjust(led, "0.01", "2026-03-01")
    assert [g.legs[1].amount.amount for g in run(led, "2026-03-31")] == [D("100.00")]


def test_entries_dated_after_as_of_but_applied_first_are_left_for_the_next_run():
    led = ledger()
    led.apply(deal(acv="20000.00"), "2026-01-30")  # 2,000.00 pending until 2026-03-01
    adjust(led, "400.00", "2026-02-20")
    # Applied before the February run, but dated in March: the hold of the deal's money
    # ends on 2026-03-01 (the entry matures it) and a March adjustment is payable at once.
    adjust(led, "250.00", "2026-03-02")
    [g] = run(led, "2026-02-28")
    assert g.legs[1].amount.amount == D("400.00")
    assert led.balances(as_of=eod("2026-02-28")) == {"pending": D("2000.00"),
                                                     "in_payout": D("400.00")}
    assert led.balances(as_of="2026-03-02") == {"payable": D("2250.00"), "in_payout": D("400.00")}
    [g] = run(led, "2026-03-31")
    assert g.legs[1].amount.amount == D("2250.00")


def test_paid_and_failed_confirmations():
    led = ledger()
    adjust(led, "700.00", "2026-02-01")
    run(led, "2026-02-28")
    pid = "run-2026-02-28:P1:USD"
    [g] = command(led, PayoutConfirmed(pid, "BANK-1", "P1"), "2026-03-02")
    assert [(leg.bucket, leg.amount.amount) for leg in g.legs] == [
        ("in_payout", D("-700.00")), ("paid", D("700.00"))]
    assert "BANK-1" in g.explanation.sentence
    assert command(led, PayoutConfirmed(pid, "BANK-1", "P1"), "2026-03-03") == []  # same again
    with pytest.raises(AccrualError, match="contradicts"):
        command(led, PayoutConfirmed(pid, "BANK-2", "P1"), "2026-03-03")
    with pytest.raises(AccrualError, match="contradicts"):
        command(led, PayoutFailed(pid, "BANK-1", "P1"), "2026-03-03")
    assert led.balances() == {"paid": D("700.00")}


def test_a_failed_payout_is_payable_again_and_goes_with_the_next_run():
    led = ledger()
    adjust(led, "700.00", "2026-02-01")
    run(led, "2026-02-28")
    [g] = command(led, PayoutFailed("run-2026-02-28:P1:USD", "BOUNCED-9", "P1"), "2026-03-05")
    assert [(leg.bucket, leg.amount.amount) for leg in g.legs] == [
        ("in_payout", D("-700.00")), ("payable", D("700.00"))]
    assert led.balances() == {"payable": D("700.00")}
    assert led.states["P1"].payouts["run-2026-02-28:P1:USD"].status == "failed"
    [again] = run(led, "2026-03-31")
    assert again.legs[1].amount.amount == D("700.00")
    with pytest.raises(AccrualError, match="unknown payout"):
        command(led, PayoutConfirmed("run-1999-01-31:P1:USD", "X", "P1"), "2026-04-01")


def test_an_open_dispute_holds_every_currency_until_it_is_resolved():
    led = ledger()
    adjust(led, "500.00", "2026-02-01")
    adjust(led, "80.00", "2026-02-01", "EUR")
    assert command(led, DisputeOpened("P1", "D-1", "g-1", "rate too low", "partner"),
                   "2026-02-20") == []
    assert run(led, "2026-02-28") == []
    assert led.balances() == {"payable": D("500.00")}
    assert command(led, DisputeResolved("P1", "D-1", "rejected", "ops"), "2026-03-03") == []
    assert len(run(led, "2026-03-31")) == 2  # USD and EUR


def test_an_accepted_dispute_posts_a_signed_adjustment_payable_at_once():
    led = ledger()
    command(led, DisputeOpened("P1", "D-2", "g-7", "missing bonus", "partner"), "2026-02-20")
    [g] = command(led, DisputeResolved("P1", "D-2", "accepted", "ops-anna", "USD", D("125.00"),
                                       "bonus was missed"), "2026-03-03")
    assert g.explanation.rule_kind == "adjustment" and g.explanation.rule_id == "dispute"
    assert g.explanation.sentence == ("Dispute D-2 on posting g-7 accepted by ops-anna: "
                                      "bonus was missed: +125.00 USD")
    assert led.balances() == {"payable": D("125.00")}
    assert not led.states["P1"].disputes
    with pytest.raises(AccrualError, match="not open"):
        command(led, DisputeResolved("P1", "D-2", "accepted", "ops"), "2026-03-04")


@pytest.mark.parametrize(("outcome", "currency", "amount", "why"), [
    ("rejected", "USD", D("10.00"), "only an accepted dispute"),
    ("accepted", "USD", D("10.005"), "more digits than USD allows"),
    ("accepted", "XXX", D("10.00"), "unknown currency"),
    ("maybe", "", None, "accepted or rejected"),
])
def test_a_resolution_the_engine_cannot_post_is_refused(outcome, currency, amount, why):
    led = ledger()
    command(led, DisputeOpened("P1", "D-3", "g-1", "why", "partner"), "2026-02-20")
    with pytest.raises(AccrualError, match=why):
        command(led, DisputeResolved("P1", "D-3", outcome, "ops", currency, amount), "2026-03-01")
    assert led.states["P1"].disputes == {"D-3": "g-1"}  # a refused entry leaves no trace


def test_commands_are_accepted_from_trailpay_only():
    led = ledger()
    with pytest.raises(AccrualError, match="only trailpay.gateway may send it"):
        command(led, DisputeOpened("P1", "D-4", "g-1", "x", "y"), "2026-02-20", source="crm.evil")


def test_state_with_payouts_and_disputes_round_trips_through_json():
    led = ledger()
    adjust(led, "500.00", "2026-02-01")
    run(led, "2026-02-28")
    adjust(led, "20.00", "2026-03-10")
    command(led, DisputeOpened("P1", "D-5", "g-1", "x", "partner"), "2026-03-11")
    s = led.states["P1"]
    assert s.disputes == {"D-5": "g-1"} and s.payable_changes == {"USD": {date(2026, 3, 10): D("20.00")}}
    again = state_from_json(state_to_json(s))
    assert state_to_json(again) == state_to_json(s) and again.payouts == s.payouts


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 59), st.integers(-5000, 90000), st.booleans()),
                max_size=12),
       st.integers(0, 59))
def test_a_run_leaves_nothing_payable_as_of_its_date_whatever_the_order(moves, cut):
    """Adjustments (and deals, with their holds) dated around as_of, applied in any order:
    the run pays exactly the payable balance the postings show at the end of as_of."""
    led = ledger()
    start = date(2026, 2, 1)
    as_of = start + timedelta(days=cut)
    for n, (offset, cents, is_deal) in enumerate(moves):
        day = (start + timedelta(days=offset)).isoformat()
        if is_deal:
            led.apply(deal(customer=f"C{n}", deal_id=f"D{n}", acv=f"{abs(cents) * 10}.00"), day)
        else:
            adjust(led, str(D(cents) / 100), day)
    before = led.balances(as_of=eod(as_of.isoformat())).get("payable", D(0))
    groups = run(led, as_of.isoformat())
    after = led.balances(as_of=eod(as_of.isoformat()))
    if before >= D("100.00"):
        assert after.get("payable", D(0)) == 0 and after["in_payout"] == before
        assert [g.legs[1].amount.amount for g in groups] == [before]
    else:
        assert groups == [] and after.get("payable", D(0)) == before


def test_period_end_by_cadence():
    assert period_end("monthly", date(2026, 4, 1)) == date(2026, 3, 31)
    assert period_end("monthly", date(2026, 3, 15)) == date(2026, 2, 28)
    assert period_end("monthly", date(2026, 1, 1)) == date(2025, 12, 31)
    assert period_end("quarterly", date(2026, 4, 1)) == date(2026, 3, 31)
    assert period_end("quarterly", date(2026, 6, 30)) == date(2026, 3, 31)
    assert period_end("quarterly", date(2026, 1, 5)) == date(2025, 12, 31)
    assert period_end("on_demand", date(2026, 4, 1)) is None


def test_due_runs_follow_cadence_enrolment_and_last_run():
    monthly = ((date(2025, 1, 1), "monthly"),)
    partners = [
        Schedulable("A", monthly, date(2026, 1, 5), None),  # due: never run
        Schedulable("B", monthly, date(2026, 1, 5), date(2026, 3, 31)),  # already run
        Schedulable("C", monthly, date(2026, 4, 1), None),  # enrolled after the period
        Schedulable("D", ((date(2025, 1, 1), "on_demand"),), date(2026, 1, 5), None),
        Schedulable("E", ((date(2025, 1, 1), "quarterly"),), date(2026, 1, 5), date(2025, 12, 31)),
        Schedulable("F", ((date(2025, 1, 1), "monthly"), (date(2026, 3, 1), "quarterly")),
                    date(2026, 1, 5), date(2026, 2, 28)),  # the version in force on 03-31
        Schedulable("G", (), date(2026, 1, 5), None),  # no plan version: nothing to decide
    ]
    assert due_runs(partners, date(2026, 4, 1)) == [
        ("A", date(2026, 3, 31)), ("E", date(2026, 3, 31)), ("F", date(2026, 3, 31))]
    # A month later nobody was run in between: the quarterly ones are still due for Q1.
    assert due_runs(partners, date(2026, 5, 2)) == [
        ("A", date(2026, 4, 30)), ("B", date(2026, 4, 30)), ("C", date(2026, 4, 30)),
        ("E", date(2026, 3, 31)), ("F", date(2026, 3, 31))]
