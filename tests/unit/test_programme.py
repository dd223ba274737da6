"""Programme metrics, comparisons and the forecast (trailpay.core.programme), every figure
worked out by hand in the comments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.kit import at, deal, fact, plan
from trailpay.core.fold import fold
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Enrollment, PlanBook
from trailpay.core.programme.compare import (
    MIN_MEANS, compare, compare_currencies, compare_means, compare_proportions, t_quantile,
    wilson,
)
from trailpay.core.programme.forecast import add_months, forecast, survival
from trailpay.core.programme.metrics import (
    CostLine, PartnerMetrics, PartnerRecord, groups, money_figures, partner_metrics,
    rate_figures,
)
from trailpay.core.state import new_state

D = Decimal


def entries(*items: tuple[str, object, str]) -> tuple[LedgerEntry, ...]:
    out = []
    for n, (day, f, share) in enumerate(items, start=1):
        out.append(LedgerEntry(f"{n}:P1", n, f"e{n}", "crm", at(day), "P1",
                               getattr(f, "customer_id", None), getattr(f, "deal_id", None),
                               D(share), "sourced", f))  # type: ignore[arg-type]
    return tuple(out)


SCRIPT = entries(
    ("2026-01-10", deal("C1", "100000.00", start="2026-01-01"), "1"),
    ("2026-02-05", deal("C2", "50000.00", start="2026-02-01", deal_id="D2"), "0.5"),
    ("2026-02-20", fact("milestone.achieved", customer_id="C1", milestone="onboarding_completed"),
     "1"),
    ("2026-03-01", fact("milestone.achieved", customer_id="C1", milestone="csat_scored",
                        score="9"), "1"),
    ("2026-03-02", fact("milestone.achieved", customer_id="C2", milestone="csat_scored",
                        score="7"), "0.5"),
    ("2026-03-15", fact("subscription.expanded", customer_id="C1", currency="USD",
                        delta_arr="10000.00", effective_date="2026-03-15"), "1"),
    ("2026-03-20", fact("usage.reported", customer_id="C2", currency="USD", metric="seats",
                        quantity="10", revenue="2000.00", period_start="2026-03-01",
                        period_end="2026-03-31"), "0.5"),
    ("2026-04-10", fact("subscription.churned", customer_id="C2", effective_date="2026-04-10",
                        reason="budget"), "0.5"),
    ("2027-01-05", fact("subscription.renewed", customer_id="C1", contract_id="D1",
                        currency="USD", arr="110000.00", period_start="2027-01-01",
                        period_end="2027-12-31"), "1"),
)
COSTS = (CostLine("P1", date(2026, 1, 10), "upfront", "USD", earned=D("20000.00")),
         CostLine("P1", date(2026, 4, 10), "clawback", "USD", reversed=D("2500.00")))
RECORD = PartnerRecord("P1", "reseller", SCRIPT, COSTS)


def test_a_partners_year_by_hand():
    m = partner_metrics(RECORD, date(2026, 1, 1), date(2027, 1, 1))
    assert m.cohort == "2026Q1"  # first deal on 2026-01-10
    # ACV 100,000 + 50,000 × 0.5; expansion 10,000; usage 2,000 × 0.5; the renewal is in 2027
    assert m.revenue["USD"] == {"acv": D("125000.00"), "expansion": D("10000.00"),
                                "usage": D("1000.00")}
    money = money_figures(m, "USD", date(2026, 1, 1), date(2027, 1, 1))
    assert money["revenue"]["total"] == D("136000.00")
    assert money["cost"]["net"] == D("17500.00")  # 20,000 earned − 2,500 clawed back
    assert money["cost_per_revenue"] == D("0.1287")  # 17,500 / 136,000 = 0.12868
    assert money["retained_per_commission"] == D("0.6286")  # (10,000 + 1,000) / 17,500
    # 136,000 over 365 days is 11,341.0 a month (30.4375 days): 17,500 of it is 1.54 months
    assert money["payback_months"] == D("1.5")
    rates = rate_figures(m)
    assert (rates["customers_active"], rates["churned"], rates["renewals"]) == (2, 1, 0)
    assert rates["churn_rate"] == D("0.5000") and rates["renewal_rate"] == D("0.0000")
    assert rates["time_to_first_value_days"] == D("50.0")  # 2026-01-01 → 2026-02-20
    assert rates["scores"] == {"csat_scored": {"mean": D("8.00"), "n": 2}}


def test_two_years_count_the_renewal_and_by_month_splits_the_facts():
    m = partner_metrics(RECORD, date(2026, 1, 1), date(2028, 1, 1))
    assert m.revenue["USD"]["renewal"] == D("110000.00") and m.renewals == 1
    assert rate_figures(m)["renewal_rate"] == D("0.5000")  # 1 renewal, 1 churn
    by_month = {g.key["month"]: g.metrics for g in groups([RECORD], date(2026, 1, 1),
                                                          date(2026, 5, 1), ["month"])}
    assert sorted(by_month) == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert by_month["2026-03"].revenue["USD"] == {"expansion": D("10000.00"),
                                                  "usage": D("1000.00")}
    assert by_month["2026-04"].churned == 1 and by_month["2026-04"].active == 2
    assert by_month["2026-02"].ttfv_days == [50] and by_month["2026-01"].active == 1
    assert by_month["2026-04"].reversed == {"USD": D("2500.00")}


def test_groups_by_type_add_partners_up():
    other = PartnerRecord("P2", "integrator", ())
    twin = PartnerRecord("P3", "reseller", SCRIPT, COSTS)
    got = groups([RECORD, other, twin], date(2026, 1, 1), date(2027, 1, 1), ["type"])
    assert [g.key for g in got] == [{"type": "integrator"}, {"type": "reseller"}]
    assert got[0].metrics.partners == 1 and got[0].metrics.active == 0
    assert got[1].metrics.partners == 2 and got[1].metrics.revenue_total("USD") == D("272000.00")
    by_cohort = groups([RECORD, other], date(2026, 1, 1), date(2027, 1, 1), ["cohort"])
    assert [g.key["cohort"] for g in by_cohort] == ["2026Q1", "none"]


# --- comparisons ------------------------------------------------------------------------------

def test_wilson_and_newcombe_match_the_published_examples():
    # Newcombe (1998), Statistics in Medicine 17, table II: 56/70 vs 48/80, method 10
    # gives 0.0524 to 0.3339 for p1 − p2 = 0.2; here b − a, so the mirror image.
    d = compare_proportions("x", 56, 70, 48, 80)
    assert d.difference == D("-0.2")  # 0.6 − 0.8
    assert (round(d.low, 4), round(d.high, 4)) == (D("-0.3339"), D("-0.0524"))
    # Wilson for 81 of 263 (Newcombe 1998, table I of the single-proportion paper): 0.2553 to
    # 0.3662
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (D("0.2553"), D("0.3662"))


def test_t_quantiles_match_the_table():
    for df, table in ((4, "2.776"), (5, "2.571"), (10, "2.228"), (30, "2.042"), (120, "1.980")):
        assert abs(t_quantile(D(df)) - D(table)) < D("0.004"), df


def test_welch_by_hand():
    # means 3 and 6; variances 2.5 and 10; se² = 2.5/5 + 10/5 = 2.5; Welch df =
    # 2.5² / (0.5²/4 + 2²/4) = 6.25 / 1.0625 = 5.882
    d = compare_means("x", [D(v) for v in (1, 2, 3, 4, 5)], [D(v) for v in (2, 4, 6, 8, 10)])
    half = t_quantile(D(100) / 17) * D("2.5").sqrt()
    assert d.difference == 3 and abs(half - D("3.89")) < D("0.01")  # t(5.88) ≈ 2.46
    assert (d.low, d.high) == (3 - half, 3 + half)


def test_too_small_a_group_says_not_enough_data():
    d = compare_means("x", [D(1)] * (MIN_MEANS - 1), [D(2)] * 10)
    assert d.low is None and d.note.startswith("not enough data") and d.n_a == MIN_MEANS - 1
    assert d.difference == 1  # the point estimate is still given
    p = compare_proportions("y", 1, 9, 5, 20)
    assert p.low is None and "10" in p.note


def _arm(n: int, acv: str, churned: int) -> list[PartnerMetrics]:
    out = []
    for i in range(n):
        m = PartnerMetrics(f"P{i}", "reseller", "2026Q1", active=4, churned=1 if i < churned else 0)
        m.revenue["USD"] = {"acv": D(acv) + i}
        m.cost["USD"] = {"upfront": (D(acv) + i) / 5}
        out.append(m)
    return out


def test_compare_arms_gives_every_metric_with_sizes():
    a, b = _arm(6, "1000", 3), _arm(6, "2000", 0)
    got = {d.metric: d for d in compare(a, b)}
    rev = got["attributed_revenue_USD"]
    assert rev.difference == 1000 and (rev.n_a, rev.n_b) == (6, 6)
    # both arms spread 0..5 around their means: variance 3.5 each, Welch df exactly 10
    half = t_quantile(D(10)) * (D("3.5") / 6 * 2).sqrt()
    assert (rev.low, rev.high) == (1000 - half, 1000 + half)
    assert got["cost_per_revenue_USD"].difference == 0  # both exactly 20%
    churn = got["churn_rate"]  # 3 of 24 vs 0 of 24
    assert churn.difference == D(-3) / 24 and churn.low < churn.difference < churn.high
    assert got["time_to_first_value_days"].note.startswith("not enough data")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(10, 40), st.integers(0, 40), st.integers(10, 40))
@example(0, 10, 25, 25)  # 0 of 10 against 25 of 25: the upper bound came out 1 + 1e-27
def test_proportion_intervals_hold_the_difference_and_mirror(ka, na, kb, nb):
    ka, kb = min(ka, na), min(kb, nb)
    ab, ba = compare_proportions("x", ka, na, kb, nb), compare_proportions("x", kb, nb, ka, na)
    assert -1 <= ab.low <= ab.difference <= ab.high <= 1
    assert ab.difference == -ba.difference
    assert abs(ab.low + ba.high) < D("1e-20") and abs(ab.high + ba.low) < D("1e-20")


# --- forecast ---------------------------------------------------------------------------------

FORECAST_PLAN = plan([
    {"id": "anchor", "kind": "upfront", "base": "acv", "rate": "0.20",
     "vesting": {"held_pct": "0.50", "release_on": ["onboarding_completed"], "within_days": 90}},
    {"id": "trail", "kind": "recurring", "rates_by_year": {"2": "0.05", "3": "0.07"}},
    {"id": "usage", "kind": "usage", "rate": "0.10"},
])


def _forecast(churn: str, months: int = 24):
    es = entries(
        ("2026-06-01", deal("C1", "100000.00", start="2026-06-01"), "1"),
        ("2026-06-05", fact("usage.reported", customer_id="C1", currency="USD", metric="seats",
                            quantity="1", revenue="910.00", period_start="2026-05-01",
                            period_end="2026-05-31"), "1"))
    book = PlanBook([FORECAST_PLAN])
    books = lambda e, seen=0: (book, Enrollment("P1", "reseller", "p"))  # noqa: E731
    state = fold(new_state("P1"), es, books).state
    return forecast(state, books, date(2026, 6, 15), months, D(churn), es)


def test_the_forecast_puts_renewals_in_their_months_at_the_engines_rates():
    f = _forecast("0")
    renewals = [(p.on, p.commission) for p in f.projected if p.kind == "recurring"]
    # tenure year 2: 5% of 100,000 (year 3, on 2028-06-01, is where a 24-month horizon ends)
    assert renewals == [(date(2027, 6, 1), D("5000.00"))]
    by_month = {m.month: m for m in f.months}
    assert len(f.months) == 24 and f.months[0].month == "2026-06"
    assert by_month["2027-06"].components["recurring"] == D("5000.00")
    # pending: the upfront's 10,000 on 2026-07-01 and the May usage's 91.00 (10% of 910) on
    # 2026-07-05; 10,000 held until 2026-08-30
    assert by_month["2026-07"].components["maturing"] == D("10091.00")
    assert by_month["2026-08"].components["held"] == D("10000.00")
    # no churn: the month's usage (below) is certain; the held money is nothing or all
    assert (by_month["2026-08"].low, by_month["2026-08"].high) == (D("30.00"), D("10030.00"))
    # usage: 910 over the 91 days before 2026-06-15 is 300 a month; 10% is 30.00, on the 15th
    # of each month after as_of (2026-06-15 itself is not after it)
    assert by_month["2026-06"].components["usage"] == 0
    assert by_month["2026-07"].components["usage"] == D("30.00")
    assert sum(1 for m in f.months if m.components["usage"]) == 23
    assert by_month["2027-06"].expected == by_month["2027-06"].high == D("5030.00")
    longer = _forecast("0", 25)
    assert [p.on for p in longer.projected if p.kind == "recurring"] == [date(2027, 6, 1),
                                                                         date(2028, 6, 1)]
    assert {m.month: m for m in longer.months}["2028-06"].components["recurring"] == D("7000.00")


def test_churn_makes_the_band():
    f = _forecast("0.2")
    june = {m.month: m for m in f.months}["2027-06"]
    s_renewal = survival(D("0.2"), date(2026, 6, 15), date(2027, 6, 1))
    s_usage = survival(D("0.2"), date(2026, 6, 15), date(2027, 6, 15))
    # 351 days = 11.53 months: 0.8^(11.53/12) = 0.807
    assert abs(s_renewal - D("0.807")) < D("0.001")
    expected = D(5000) * s_renewal + D(30) * s_usage
    assert june.expected == expected.quantize(D("0.01"))
    sd = (D(5000) ** 2 * s_renewal * (1 - s_renewal) + D(30) ** 2 * s_usage * (1 - s_usage)).sqrt()
    assert june.low == max(D(0), expected - D("1.959963984540054") * sd).quantize(D("0.01"))
    assert june.high == D("5030.00")  # the band cannot pass everything renewing
    assert june.low < june.expected < june.high


def test_add_months_keeps_the_day_or_the_last():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 15), 14) == date(2028, 1, 15)


def test_only_the_first_onboarding_counts_even_outside_the_window():
    again = entries(*((day, f, share) for day, f, share in (
        ("2026-01-10", deal("C1", "100000.00", start="2026-01-01"), "1"),
        ("2026-02-20", fact("milestone.achieved", customer_id="C1",
                            milestone="onboarding_completed"), "1"),
        ("2026-05-01", fact("milestone.achieved", customer_id="C1",
                            milestone="onboarding_completed"), "1"))))
    rec = PartnerRecord("P1", "reseller", again)
    assert partner_metrics(rec, date(2026, 4, 1), date(2026, 6, 1)).ttfv_days == []
    assert partner_metrics(rec, date(2026, 1, 1), date(2026, 6, 1)).ttfv_days == [50]
    by_month = groups([rec], date(2026, 1, 1), date(2026, 6, 1), ["month"])
    assert [g.metrics.ttfv_days for g in by_month] == [[], [50], [], [], []]
    assert [g.metrics.active for g in by_month] == [1, 1, 1, 1, 1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(range(len(SCRIPT))), unique=True),
       st.integers(0, 14), st.integers(1, 14))
def test_one_pass_over_months_equals_each_month_alone(picked, first, span):
    rec = PartnerRecord("P1", "reseller", tuple(SCRIPT[i] for i in sorted(picked)), COSTS)
    start = date(2025 + (first + 11) // 12, (first + 11) % 12 + 1, 1)
    windows = [w for w in groups([rec], start, date(2027, 6, 1), ["month"])][:span]
    for g in windows:
        alone = partner_metrics(rec, g.start, g.end)
        got = g.metrics
        assert (got.revenue, got.cost, got.reversed, got.active, got.churned, got.renewals,
                got.ttfv_days, got.scores) == (alone.revenue, alone.cost, alone.reversed,
                                               alone.active, alone.churned, alone.renewals,
                                               alone.ttfv_days, alone.scores)


def test_compare_currencies_gives_each_currencys_money_and_the_rates_once():
    a, b = _arm(6, "1000", 3), _arm(6, "2000", 0)
    for m in (*a, *b):
        m.revenue["EUR"] = {"acv": D("10")}
    got = [d.metric for d in compare_currencies(a, b)]
    assert got[:8] == ["attributed_revenue_EUR", "commission_cost_EUR", "expansion_arr_EUR",
                       "cost_per_revenue_EUR", "attributed_revenue_USD", "commission_cost_USD",
                       "expansion_arr_USD", "cost_per_revenue_USD"]
    assert got.count("churn_rate") == 1 and got.count("renewal_rate") == 1
