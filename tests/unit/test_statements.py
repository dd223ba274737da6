"""Statements: opening + lines = closing, and hold periods ending become payable."""

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trailpay.core.statements import LegRow, balances_as_of, build_statement, month_bounds


def leg(day: date, bucket: str, amount: str, available_on: date | None = None, gid: str = "g"):
    return LegRow(datetime(day.year, day.month, day.day, 12, tzinfo=UTC), "USD", bucket,
                  Decimal(amount), available_on, group_id=gid, event_id="e", event_type="deal.closed")


def test_pending_becomes_payable_on_its_date():
    rows = [("USD", "pending", date(2026, 3, 3), Decimal("100.00"))]
    assert balances_as_of(rows, date(2026, 3, 2))["USD"]["pending"] == Decimal("100.00")
    assert balances_as_of(rows, date(2026, 3, 3))["USD"]["payable"] == Decimal("100.00")


def test_statement_shows_hold_ended_lines_and_closes():
    opening = [leg(date(2026, 2, 1), "pending", "7200.00", date(2026, 3, 3), "g1")]
    month = [leg(date(2026, 3, 10), "pending", "50.00", date(2026, 4, 9), "g2"),
             leg(date(2026, 3, 11), "payable", "-10.00", None, "g3")]
    st_ = build_statement("P1", "2026-03", opening, month)
    assert st_.opening["USD"]["pending"] == Decimal("7200.00")
    assert st_.closing["USD"]["payable"] == Decimal("7190.00")
    assert st_.closing["USD"]["pending"] == Decimal("50.00")
    assert [ln.date for ln in st_.lines][:2] == [date(2026, 3, 3), date(2026, 3, 3)]


legs = st.lists(st.tuples(
    st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 6, 30)),
    st.sampled_from(["held", "pending", "payable", "forfeited", "clawed_back"]),
    st.integers(min_value=-10**6, max_value=10**6),
    st.integers(min_value=0, max_value=60)), max_size=30)


@given(legs, st.sampled_from(["2026-02", "2026-03", "2026-04"]))
def test_opening_plus_lines_is_closing_and_closing_is_balance_at_month_end(rows, month):
    from datetime import timedelta
    first, last = month_bounds(month)
    all_legs = [leg(d, b, str(Decimal(c) / 100),
                    d + timedelta(days=h) if b == "pending" else None, f"g{i}")
                for i, (d, b, c, h) in enumerate(rows)]
    before = [lg for lg in all_legs if lg.effective_at.date() < first]
    during = [lg for lg in all_legs if first <= lg.effective_at.date() <= last]
    st_ = build_statement("P", month, before, during)
    totals = {c: dict(b) for c, b in st_.opening.items()}
    for ln in st_.lines:
        totals.setdefault(ln.currency, {}).setdefault(ln.bucket, Decimal(0))
        totals[ln.currency][ln.bucket] += ln.amount
    expected = balances_as_of(((lg.currency, lg.bucket, lg.available_on, lg.amount)
                               for lg in before + during), last)
    for c, buckets in expected.items():
        for b, amount in buckets.items():
            assert st_.closing[c][b] == amount == totals[c].get(b, Decimal(0))


def test_month_bounds_rejects_nonsense():
    import pytest
    for bad in ("2026-13", "26-01", "2026-1", "march"):
        with pytest.raises(ValueError):
            month_bounds(bad)
