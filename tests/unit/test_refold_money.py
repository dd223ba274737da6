"""Issue 13: a late entry that moves pending money lets the re-fold stop before a later
clawback that takes from pending lots only where that take cannot change (core.shortcut:
money_read, money_change_at); a late fact about a customer's book may be carried over
that customer's later usage (core.timeline.BOOK_BLIND). Either way, what is posted and
kept is what folding everything would."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, strategies as st

from tests.kit import deal, fact
from tests.unit.test_order_independence import PROPS, attribute, books, nets
from trailpay.core.fold import fold_partners
from trailpay.core.timeline import Timeline

START = date(2026, 1, 5)  # plan version 1: upfront 20%, half held 60 days, hold 30 days


def _fact(kind: str, cid: str, day: date, amount: int):
    if kind == "usage":
        return fact("usage.reported", customer_id=cid, currency="USD", metric="m",
                    quantity="1", revenue=f"{amount}.00", period_start=day.isoformat(),
                    period_end=day.isoformat())
    if kind == "refund":
        return fact("refund.issued", customer_id=cid, currency="USD", amount=f"{amount}.00",
                    invoice_id=f"I-{day}-{amount}")
    if kind == "churned":
        return fact("subscription.churned", customer_id=cid, effective_date=day.isoformat(),
                    reason="budget")
    if kind == "expanded":
        return fact("subscription.expanded", customer_id=cid, currency="USD",
                    delta_arr=f"{amount}.00", effective_date=day.isoformat())
    if kind == "milestone":
        return fact("milestone.achieved", customer_id=cid, milestone="onboarding_completed")
    if kind == "referral":
        return fact("referral.qualified", partner_id="P0", lead_id=f"L-{day}")
    assert kind == "adjustment"
    return fact("adjustment.posted", partner_id="P0", currency="USD", amount=f"{amount}.00",
                reason="ops", approved_by="ops")


def _programme(acvs: list[int], later: list[tuple[int, str, int]],
               late: tuple[int, str, int]) -> tuple[list, int]:
    """Deals for customers B0.. on the first days, then later entries (day offset, kind,
    amount) about them in turn, and the late fact (day offset, kind, amount, about B0):
    the programme in time order (the late fact last among its day's) and its position."""
    out = [(START + timedelta(days=i % 3), deal(customer=f"B{i}", acv=f"{a}.00",
                                                partners=[("P0", "1")], deal_id=f"D-B{i}",
                                                start=START.isoformat()))
           for i, a in enumerate(acvs)]
    for n, (day, kind, amount) in enumerate(later):
        on = START + timedelta(days=day)
        out.append((on, _fact(kind, f"B{n % len(acvs)}", on, amount)))
    out.sort(key=lambda x: x[0])
    on = START + timedelta(days=late[0])
    item = (on, _fact(late[1], "B0", on, late[2]))
    out.append(item)
    out.sort(key=lambda x: x[0])  # (stable)
    return out, next(i for i, x in enumerate(out) if x is item)


def _late_arrival(programme: list, at: int) -> tuple[Timeline, list, object]:
    """Every entry in order but the late fact's (at `at`), then the late fact alone: the
    timeline, everything posted, and the late arrival."""
    entries = attribute(programme, runs=False)
    seq = at + 1  # (one entry a fact: P0 alone)
    late = [e for e in entries if e.journal_seq == seq]
    assert len(late) == 1
    t = Timeline("P0")
    posted = t.arrive([e for e in entries if e.journal_seq != seq], books).groups
    arrival = t.arrive(late, books)
    return t, posted + arrival.groups, arrival


def _assert_as_folded(programme: list, t: Timeline, posted: list) -> None:
    entries = attribute(programme, runs=False)
    defined = fold_partners(entries, books)["P0"]
    assert nets(posted) == nets(defined.groups)
    assert t.state.customers == defined.state.customers
    assert t.state.pending == defined.state.pending and t.state.payable == defined.state.payable
    assert t.state.payable_changes == defined.state.payable_changes
    for cur in ("USD", "EUR"):
        assert t.state.volume_value(cur) == defined.state.volume_value(cur)
    # What each entry's take read, kept for the next late entry, is what it reads in the
    # sorted history (a cut carried the difference over takes it could not change).
    again = Timeline("P0")
    again.arrive(entries, books)
    assert t.reads == again.reads
    assert t.volumes == again.volumes


later_entries = st.lists(st.tuples(
    st.integers(5, 170),
    st.sampled_from(["usage", "usage", "usage", "refund", "refund", "churned", "expanded",
                     "milestone"]),
    st.integers(100, 120_000)), min_size=20, max_size=70)
late_facts = st.tuples(st.integers(5, 160),
                       st.sampled_from(["usage", "usage", "referral", "adjustment", "refund",
                                        "expanded", "milestone"]),
                       st.integers(100, 120_000))


@PROPS
@given(st.lists(st.integers(5_000, 60_000), min_size=2, max_size=6), later_entries,
       late_facts)
def test_a_late_fact_before_clawbacks_that_take_pending_money_folds_as_everything(
        acvs, later, late):
    """Refunds and churns that take from held money, from pending lots (shallow or deep)
    and from the payable balance, after a late fact that adds or takes pending or payable
    money, or changes a customer's book: the same postings and state as a full fold."""
    programme, at = _programme(acvs, later, late)
    t, posted, _ = _late_arrival(programme, at)
    _assert_as_folded(programme, t, posted)


def _shallow(n: int) -> list[tuple[int, str, int]]:
    """After the held money is forfeited (day 60): usage every day for B0..B3 (60 each, lots
    of 240 due 30 days later), then small refunds (200) that take only from the latest lots."""
    out = [(70 + i // 4, "usage", 2_000) for i in range(n)]
    out += [(70 + n // 4 + i, "refund", 1_000) for i in range(8)]
    return out


def test_a_late_usage_fact_is_carried_over_refunds_that_take_only_later_lots():
    """The late lot (due day 110) is due before every lot the later refunds (days 100-107)
    take from (due day 128 or 129): the fold stops at its first check, before them."""
    programme, at = _programme([20_000] * 4, _shallow(120), (80, "usage", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded < 40
    _assert_as_folded(programme, t, posted)


def test_a_refund_that_reaches_the_late_lot_is_folded_again(monkeypatch):
    """A refund on day 101 large enough (5,800 of B0's right) to go through the lots down
    to the late one (due day 110) takes otherwise with it: the fold goes past it and
    corrects it. Skipping the check carries the difference over it and posts what a full
    fold does not."""
    later = _shallow(120) + [(101, "refund", 120_000)]
    programme, at = _programme([60_000] * 4, later, (80, "usage", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded > 80
    assert any(":correction:" in g.group_id for g in arrival.groups)
    _assert_as_folded(programme, t, posted)

    monkeypatch.setattr(Timeline, "_takes_hold", lambda self, *a: True)
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded < 40
    with pytest.raises(AssertionError):
        _assert_as_folded(programme, t, posted)


def test_a_late_expansion_is_carried_over_its_customers_later_usage(monkeypatch):
    """Usage facts read neither the customer's ARR nor anything else of its book: a late
    expansion of B0 stops at its first check although B0 has later usage (far above the
    tier boundary, so no multiplier changes); counting them as reads folds them all."""
    later = [(20 + i // 4, "usage", 5_000) for i in range(120)]
    programme, at = _programme([60_000] * 4, later, (10, "expanded", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded < 40
    _assert_as_folded(programme, t, posted)

    monkeypatch.setattr("trailpay.core.timeline.BOOK_BLIND", ())
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded > 100
    _assert_as_folded(programme, t, posted)
