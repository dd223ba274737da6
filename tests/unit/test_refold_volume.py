"""Issue 13: a late entry that moves the partner's volume lets the re-fold stop early only
where no later entry's tier multiplier changes, and what it posts and keeps is what folding
everything would (core.shortcut: Difference.volume, tier_change_at)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, strategies as st

from tests.kit import deal, fact
from tests.unit.test_order_independence import PROPS, attribute, books
from tests.unit.test_refold_money import _assert_as_folded
from trailpay.core.timeline import Timeline

START = date(2026, 1, 5)
THRESHOLD = 150_000  # the tier boundary of tests.unit.test_engine_properties.BOOK (×1.2 above)


def _programme(acvs: list[int], later: list[tuple[int, str, int]], late_day: int,
               late_acv: int) -> tuple[list, int]:
    """Deals for customers B0.. on the first days, then later entries (day offset, kind,
    amount) about them, and a new deal for customer LATE on `late_day`: the programme in
    time order and the position of the late deal in it."""
    out = [(START + timedelta(days=i % 3), deal(customer=f"B{i}", acv=f"{a}.00",
                                                partners=[("P0", "1")], deal_id=f"D-B{i}"))
           for i, a in enumerate(acvs)]
    for n, (day, kind, amount) in enumerate(later):
        cid = f"B{n % len(acvs)}"
        if kind == "usage":
            f = fact("usage.reported", customer_id=cid, currency="USD", metric="m",
                     quantity="1", revenue=f"{amount}.00", period_start="2026-01-01",
                     period_end="2026-01-31")
        else:
            f = fact(f"subscription.{kind}", customer_id=cid, currency="USD",
                     delta_arr=f"{amount}.00", effective_date=(START + timedelta(days=day))
                     .isoformat())
        out.append((START + timedelta(days=day), f))
    late = (START + timedelta(days=late_day), deal(customer="LATE", acv=f"{late_acv}.00",
                                                   partners=[("P0", "1")], deal_id="D-LATE"))
    out.sort(key=lambda x: x[0])  # (stable: the late deal goes after the day's others)
    out.append(late)
    out.sort(key=lambda x: x[0])
    return out, out.index(late)


def _late_arrival(programme: list) -> tuple[Timeline, list, object]:
    """Every entry in order but the late deal's, then the late deal alone: the timeline,
    everything posted, and the late arrival."""
    entries = attribute(programme, runs=False)
    late = [e for e in entries if e.customer_id == "LATE"]
    t = Timeline("P0")
    posted = t.arrive([e for e in entries if e.customer_id != "LATE"], books).groups
    arrival = t.arrive(late, books)
    return t, posted + arrival.groups, arrival


later_entries = st.lists(st.tuples(st.integers(10, 120),  # some after the late deal's vesting deadline
                                   st.sampled_from(["expanded", "expanded", "contracted",
                                                    "usage"]),
                                   st.integers(500, 30_000)), min_size=20, max_size=60)


@PROPS
@given(st.lists(st.integers(5_000, 60_000), min_size=2, max_size=6), later_entries,
       st.integers(8, 55), st.integers(1_000, 90_000))
def test_a_late_deal_near_or_far_above_a_tier_folds_as_everything(acvs, later, late_day,
                                                                    late_acv):
    """Partners whose volume sits below, near or far above the tier boundary: the late
    deal's ARR moves later expansions across it or not; either way the same as a full fold."""
    programme, _ = _programme(acvs, later, late_day, late_acv)
    t, posted, _ = _late_arrival(programme)
    _assert_as_folded(programme, t, posted)


def _expansions(n: int, amount: int = 1_000) -> list[tuple[int, str, int]]:
    return [(20 + i // 4, "expanded", amount) for i in range(n)]


def test_far_above_the_tier_the_refold_stops_soon_after_a_late_deal():
    """Volume ~1,000,000, the boundary 150,000: a 10,000 deal changes no later multiplier,
    so the fold stops at the first check after it, not after 80 later entries."""
    programme, _ = _programme([200_000] * 5, _expansions(80), 12, 10_000)
    t, posted, arrival = _late_arrival(programme)
    assert arrival.refolded < 40
    _assert_as_folded(programme, t, posted)


def test_just_below_the_tier_a_late_deal_rerates_every_later_expansion():
    """Volume 145,000 and a late 10,000 deal: every later expansion (they add 100 each,
    staying below the boundary as recorded) is now at ×1.2; the fold cannot stop early and
    posts a correction for them."""
    programme, _ = _programme([29_000] * 5, _expansions(40, 100), 12, 10_000)
    t, posted, arrival = _late_arrival(programme)
    assert arrival.refolded >= 40
    assert any(":correction:" in g.group_id for g in arrival.groups)
    _assert_as_folded(programme, t, posted)


def test_a_tier_crossed_only_near_the_end_folds_up_to_it_and_no_further():
    """Volume climbs by 100 per expansion from 139,000; with the late 10,000 deal the
    boundary is crossed 10,000 earlier: the expansions in between are re-rated, those
    above the boundary either way are not folded again."""
    later = ([(20 + i // 4, "expanded", 100) for i in range(40)] + [(30, "expanded", 10_000)]
             + [(31 + i // 4, "expanded", 100) for i in range(60)])
    programme, _ = _programme([27_800] * 5, later, 12, 10_000)
    t, posted, arrival = _late_arrival(programme)
    assert 40 <= arrival.refolded < 90
    _assert_as_folded(programme, t, posted)
