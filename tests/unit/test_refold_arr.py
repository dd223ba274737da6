"""Issue 13: a late fact that changes a customer's ARR alone (an expansion, a contraction)
is carried over that customer's later entries that read no ARR, as an amount added to the
recorded ARR: expansions, refunds and milestones keep the difference, renewals and churns
set the ARR alike in both folds (core.timeline: ARR_KEEPING, ARR_SETTING, _arr_carries).
What is posted and kept is what folding everything would."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, strategies as st

from tests.kit import fact
from tests.unit import test_refold_money as money
from tests.unit.test_refold_money import _assert_as_folded, _late_arrival
from trailpay.core import timeline
from trailpay.core.facts import SubscriptionContracted

START = money.START


def _fact(kind: str, cid: str, day: date, amount: int):
    if kind in ("renewed", "renewed_eur"):  # (in EUR: refused, the deals being in USD)
        return fact("subscription.renewed", customer_id=cid, contract_id=f"K-{cid}",
                    currency="EUR" if kind == "renewed_eur" else "USD", arr=f"{amount}.00", period_start=day.isoformat(),
                    period_end=(day + timedelta(days=364)).isoformat())
    if kind == "contracted":
        return fact("subscription.contracted", customer_id=cid, currency="USD",
                    delta_arr=f"{amount}.00", effective_date=day.isoformat())
    return _money_fact(kind, cid, day, amount)


_money_fact = money._fact


def _programme(acvs, later, late):
    """test_refold_money's programme, with renewals and contractions too."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(money, "_fact", _fact)
        return money._programme(acvs, later, late)


later_entries = st.lists(st.tuples(
    st.integers(5, 170),
    st.sampled_from(["usage", "expanded", "expanded", "contracted", "renewed", "churned",
                     "refund", "milestone"]),
    st.integers(100, 60_000)), min_size=10, max_size=60)
late_facts = st.tuples(st.integers(5, 160),
                       st.sampled_from(["expanded", "expanded", "contracted", "refund",
                                        "milestone"]),
                       st.integers(100, 60_000))


@money.PROPS
@given(st.lists(st.integers(5_000, 60_000), min_size=2, max_size=5), later_entries,
       late_facts)
def test_a_late_arr_change_folds_as_everything(acvs, later, late):
    """Later expansions, contractions (some floored at zero), renewals, churns, refunds and
    milestones of the same customers, volumes around the tier boundary (150,000), after a
    late fact about B0 that changes its ARR (or other fields: a refund, a milestone): the
    same postings, books, money and recorded reads as a full fold."""
    programme, at = _programme(acvs, later, late)
    t, posted, _ = _late_arrival(programme, at)
    _assert_as_folded(programme, t, posted)


def _far_above(n: int, kinds: tuple[str, ...]) -> list[tuple[int, str, int]]:
    """n later entries about B0..B3 in turn, kinds in turn, days 20 on (volume far above
    the tier boundary: no multiplier changes)."""
    return [(20 + i // 4, kinds[(i // 4) % len(kinds)], 1_000) for i in range(n)]


def test_a_late_expansion_is_carried_over_its_customers_later_expansions(monkeypatch):
    """B0's later expansions, refunds and milestones read no ARR: the fold stops at its
    first check. Counting expansions as reads folds them all again."""
    later = _far_above(120, ("expanded", "refund", "milestone"))
    programme, at = _programme([60_000] * 4, later, (10, "expanded", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded < 40
    _assert_as_folded(programme, t, posted)

    monkeypatch.setattr(timeline, "ARR_KEEPING", ())
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded > 100
    _assert_as_folded(programme, t, posted)


def test_a_renewal_sets_the_carried_arr_alike(monkeypatch):
    """A renewal of B0 (day 30) sets its ARR to the fact's in both folds: the carried
    difference stops there (books, and the volumes later entries read). Counting renewals
    as keeping the difference carries it past them: not what a full fold keeps."""
    later = _far_above(40, ("expanded",)) + [(30, "renewed", 50_000)]
    later += [(31 + i // 4, "expanded", 1_000) for i in range(80)]
    programme, at = _programme([60_000] * 4, later, (10, "expanded", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    assert arrival.refolded < 40
    _assert_as_folded(programme, t, posted)

    monkeypatch.setattr(timeline, "ARR_KEEPING", timeline.ARR_KEEPING + timeline.ARR_SETTING)
    monkeypatch.setattr(timeline, "ARR_SETTING", ())
    t, posted, arrival = _late_arrival(programme, at)
    with pytest.raises(AssertionError):
        _assert_as_folded(programme, t, posted)


def test_a_refused_renewal_sets_nothing():
    """A renewal of B0 in EUR (its deal is in USD) is refused, as recorded and with the late
    expansion: the difference in its ARR goes on past it (counted as setting the ARR, the
    carry would stop there and keep B0's recorded ARR)."""
    later = _far_above(40, ("expanded",)) + [(30, "renewed_eur", 50_000)]
    later += [(31 + i // 4, "expanded", 1_000) for i in range(80)]
    programme, at = _programme([60_000] * 4, later, (10, "expanded", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    _assert_as_folded(programme, t, posted)


def test_the_volumes_after_a_renewal_are_not_moved(monkeypatch):
    """After the renewal, later entries read the recorded volume: moving what they read by
    the late expansion's term (no drop at the renewal) keeps wrong reads for the next
    late entry."""
    later = _far_above(40, ("expanded",)) + [(30, "renewed", 50_000)]
    later += [(31 + i // 4, "expanded", 1_000) for i in range(80)]
    programme, at = _programme([60_000] * 4, later, (10, "expanded", 2_000))
    monkeypatch.setattr(timeline, "_drops", lambda arr, offset: [])
    t, posted, arrival = _late_arrival(programme, at)
    with pytest.raises(AssertionError):
        _assert_as_folded(programme, t, posted)


def test_a_contraction_floored_at_zero_stops_the_carry(monkeypatch):
    """B0 (ARR 10,000) contracts by 11,000 on day 12: recorded, its ARR floors at 0; with
    the late expansion of 2,000 it is 1,000. A contraction is not carried over; counted as
    keeping the difference, the carried ARR (2,000) is not the folded one."""
    later = [(12, "contracted", 11_000)] + _far_above(60, ("expanded",))
    programme, at = _programme([10_000, 60_000, 60_000, 60_000], later,
                               (10, "expanded", 2_000))
    t, posted, arrival = _late_arrival(programme, at)
    _assert_as_folded(programme, t, posted)

    monkeypatch.setattr(timeline, "ARR_KEEPING",
                        (*timeline.ARR_KEEPING, SubscriptionContracted))
    t, posted, arrival = _late_arrival(programme, at)
    with pytest.raises(AssertionError):
        _assert_as_folded(programme, t, posted)
