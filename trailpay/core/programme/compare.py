"""Compare two groups of partners (a pilot's arms, two types, two cohorts), metric by metric.

Each difference is b − a (treatment minus control when a is the control) with a 95%
confidence interval and the sample sizes, or "not enough data". Methods, chosen to need
nothing past the standard library and to be checkable by hand:

- means (per partner: attributed revenue, net commission cost, expansion ARR; per
  customer: time to first value; per score: each milestone's scores): Welch's t interval,
  with the Welch–Satterthwaite degrees of freedom and the t quantile from the
  Cornish–Fisher expansion (within 0.003 of the table from 4 degrees of freedom up).
  At least MIN_MEANS observations in each group.
- proportions (per customer: churn rate = churned / active, renewal rate = renewals /
  (renewals + churns)): Newcombe's hybrid score interval (his method 10), built from the
  two Wilson intervals; it stays inside [-1, 1] and behaves near 0 and 1. At least
  MIN_TRIALS trials in each group. Customers are counted as independent, though they
  cluster within partners: read the interval as a little narrow.
- cost per unit of revenue (Σ net cost / Σ revenue over the group's partners): the delta
  method for a ratio of sums, the partner the unit, with Welch's degrees of freedom.
  At least MIN_MEANS partners with revenue in each group.

Everything is Decimal; no value here is money that is posted, but the arithmetic stays
exact until the square roots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from trailpay.core.programme.metrics import PartnerMetrics

MIN_MEANS = 5
MIN_TRIALS = 10
Z = Decimal("1.959963984540054")  # the 97.5% point of the standard normal
ZERO, ONE = Decimal(0), Decimal(1)
NOT_ENOUGH = "not enough data"


def t_quantile(df: Decimal) -> Decimal:
    """The 97.5% point of Student's t with `df` degrees of freedom (Cornish–Fisher,
    Abramowitz & Stegun 26.7.5, four terms)."""
    z = Z
    z2 = z * z
    z3, z5, z7, z9 = z2 * z, z2 * z2 * z, z2 ** 3 * z, z2 ** 4 * z
    g = ((z3 + z) / 4,
         (5 * z5 + 16 * z3 + 3 * z) / 96,
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / 384,
         (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / 92160)
    return z + sum((gi / df ** (i + 1) for i, gi in enumerate(g)), ZERO)


def _var(xs: Sequence[Decimal]) -> Decimal:
    m = sum(xs, ZERO) / len(xs)
    return sum(((x - m) ** 2 for x in xs), ZERO) / (len(xs) - 1)


def _welch_df(va_n: Decimal, vb_n: Decimal, na: int, nb: int) -> Decimal | None:
    """Welch–Satterthwaite degrees of freedom from var/n of each group (None: both zero)."""
    den = va_n ** 2 / (na - 1) + vb_n ** 2 / (nb - 1)
    return (va_n + vb_n) ** 2 / den if den else None


def wilson(k: int, n: int) -> tuple[Decimal, Decimal]:
    """Wilson's 95% score interval for k successes in n trials."""
    p, n_ = Decimal(k) / n, Decimal(n)
    z2 = Z * Z
    centre = (p + z2 / (2 * n_)) / (1 + z2 / n_)
    half = Z / (1 + z2 / n_) * (p * (1 - p) / n_ + z2 / (4 * n_ * n_)).sqrt()
    return max(ZERO, centre - half), min(ONE, centre + half)


@dataclass(frozen=True, slots=True)
class Difference:
    """One metric in both groups, b − a, and its 95% interval (None: not enough data)."""

    metric: str
    method: str  # welch | newcombe | delta-ratio
    unit: str  # what n counts: partners, customers, scores, trials
    a: Decimal | None
    b: Decimal | None
    n_a: int
    n_b: int
    difference: Decimal | None
    low: Decimal | None
    high: Decimal | None
    note: str | None = None  # NOT_ENOUGH, with the threshold

    @property
    def enough(self) -> bool:
        return self.low is not None


def _short(metric: str, method: str, unit: str, a: Decimal | None, b: Decimal | None,
           na: int, nb: int, need: int) -> Difference:
    diff = b - a if a is not None and b is not None else None
    return Difference(metric, method, unit, a, b, na, nb, diff, None, None,
                      f"{NOT_ENOUGH}: each group needs at least {need} {unit}")


def compare_means(metric: str, xs: Sequence[Decimal], ys: Sequence[Decimal],
                  unit: str = "partners") -> Difference:
    """Welch's interval for mean(ys) − mean(xs)."""
    na, nb = len(xs), len(ys)
    ma = sum(xs, ZERO) / na if na else None
    mb = sum(ys, ZERO) / nb if nb else None
    if na < MIN_MEANS or nb < MIN_MEANS or ma is None or mb is None:
        return _short(metric, "welch", unit, ma, mb, na, nb, MIN_MEANS)
    va_n, vb_n = _var(xs) / na, _var(ys) / nb
    se = (va_n + vb_n).sqrt()
    df = _welch_df(va_n, vb_n, na, nb)
    half = (t_quantile(df) if df else Z) * se
    d = mb - ma
    return Difference(metric, "welch", unit, ma, mb, na, nb, d, d - half, d + half)


def compare_proportions(metric: str, ka: int, na: int, kb: int, nb: int,
                        unit: str = "customers") -> Difference:
    """Newcombe's hybrid score interval for kb/nb − ka/na."""
    pa = Decimal(ka) / na if na else None
    pb = Decimal(kb) / nb if nb else None
    if na < MIN_TRIALS or nb < MIN_TRIALS or pa is None or pb is None:
        return _short(metric, "newcombe", unit, pa, pb, na, nb, MIN_TRIALS)
    la, ua = wilson(ka, na)
    lb, ub = wilson(kb, nb)
    d = pb - pa
    low = d - ((pb - lb) ** 2 + (ua - pa) ** 2).sqrt()
    high = d + ((ub - pb) ** 2 + (pa - la) ** 2).sqrt()
    # Exactly ±1 at the extremes (0 of n against n of n); the square roots' last digit can
    # land a hair outside, and a difference of proportions never does.
    low, high = max(low, Decimal(-1)), min(high, Decimal(1))
    return Difference(metric, "newcombe", unit, pa, pb, na, nb, d, low, high)


def compare_ratios(metric: str, a: Sequence[tuple[Decimal, Decimal]],
                   b: Sequence[tuple[Decimal, Decimal]]) -> Difference:
    """Σy/Σx of b minus that of a, each pair (y, x) one partner; delta-method interval."""
    def part(pairs: Sequence[tuple[Decimal, Decimal]]) -> tuple[Decimal | None, Decimal, int]:
        pairs = [(y, x) for y, x in pairs if x]
        n = len(pairs)
        sx = sum((x for _, x in pairs), ZERO)
        if not n or not sx:
            return None, ZERO, n
        r = sum((y for y, _ in pairs), ZERO) / sx
        if n < 2:
            return r, ZERO, n
        resid = [y - r * x for y, x in pairs]
        xbar = sx / n
        return r, sum((d * d for d in resid), ZERO) / (n - 1) / n / (xbar * xbar), n
    ra, va_n, na = part(a)
    rb, vb_n, nb = part(b)
    if na < MIN_MEANS or nb < MIN_MEANS or ra is None or rb is None:
        return _short(metric, "delta-ratio", "partners", ra, rb, na, nb, MIN_MEANS)
    df = _welch_df(va_n, vb_n, na, nb)
    half = (t_quantile(df) if df else Z) * (va_n + vb_n).sqrt()
    d = rb - ra
    return Difference(metric, "delta-ratio", "partners", ra, rb, na, nb, d, d - half, d + half)


def compare(arm_a: Sequence[PartnerMetrics], arm_b: Sequence[PartnerMetrics],
            currency: str | None = None) -> list[Difference]:
    """Every metric of two groups of partners (one PartnerMetrics per partner, over the
    same window), b − a. Money metrics are in `currency` (default: the one currency the
    groups have; none are compared when they have several and none is named)."""
    out: list[Difference] = []
    currencies = sorted({c for m in (*arm_a, *arm_b) for c in m.currencies()})
    cur = currency or (currencies[0] if len(currencies) == 1 else None)
    if cur is not None:
        per: list[tuple[str, Callable[[PartnerMetrics], Decimal]]] = [
            ("attributed_revenue", lambda m: m.revenue_total(cur)),
            ("commission_cost", lambda m: m.net_cost(cur)),
            ("expansion_arr", lambda m: m.revenue.get(cur, {}).get("expansion", ZERO)),
        ]
        for name, get in per:
            out.append(compare_means(f"{name}_{cur}", [get(m) for m in arm_a],
                                     [get(m) for m in arm_b]))
        out.append(compare_ratios(f"cost_per_revenue_{cur}",
                                  [(m.net_cost(cur), m.revenue_total(cur)) for m in arm_a],
                                  [(m.net_cost(cur), m.revenue_total(cur)) for m in arm_b]))
    total = lambda arm, f: sum((f(m) for m in arm), 0)  # noqa: E731
    out.append(compare_proportions(
        "renewal_rate", total(arm_a, lambda m: m.renewals),
        total(arm_a, lambda m: m.renewals + m.churned), total(arm_b, lambda m: m.renewals),
        total(arm_b, lambda m: m.renewals + m.churned), unit="decisions"))
    out.append(compare_proportions(
        "churn_rate", total(arm_a, lambda m: m.churned), total(arm_a, lambda m: m.active),
        total(arm_b, lambda m: m.churned), total(arm_b, lambda m: m.active)))
    out.append(compare_means("time_to_first_value_days",
                             [Decimal(d) for m in arm_a for d in m.ttfv_days],
                             [Decimal(d) for m in arm_b for d in m.ttfv_days], unit="customers"))
    for milestone in sorted({k for m in (*arm_a, *arm_b) for k in m.scores}):
        out.append(compare_means(f"score_{milestone}",
                                 [s for m in arm_a for s in m.scores.get(milestone, ())],
                                 [s for m in arm_b for s in m.scores.get(milestone, ())],
                                 unit="scores"))
    return out


MONEY_METRICS = ("attributed_revenue", "commission_cost", "expansion_arr", "cost_per_revenue")


def compare_currencies(arm_a: Sequence[PartnerMetrics], arm_b: Sequence[PartnerMetrics]
                       ) -> list[Difference]:
    """compare() with the money metrics of every currency the groups have (each currency
    alone, never converted) and the currency-free metrics once."""
    currencies = sorted({c for m in (*arm_a, *arm_b) for c in m.currencies()})
    out = compare(arm_a, arm_b, currencies[0] if currencies else None)
    money = len(MONEY_METRICS) if currencies else 0  # compare() puts them first
    more = [d for cur in currencies[1:] for d in compare(arm_a, arm_b, cur)
            if d.metric in {f"{name}_{cur}" for name in MONEY_METRICS}]
    return out[:money] + more + out[money:]


def difference_json(d: Difference, places: int = 4) -> dict[str, object]:
    """A difference as JSON: decimals as strings to `places` decimals."""
    q = Decimal(1).scaleb(-places)
    s = lambda v: None if v is None else f"{v.quantize(q):f}"  # noqa: E731
    return {"metric": d.metric, "method": d.method, "unit": d.unit, "a": s(d.a), "b": s(d.b),
            "n_a": d.n_a, "n_b": d.n_b, "difference": s(d.difference),
            "ci95": None if d.low is None else [s(d.low), s(d.high)], "note": d.note}
