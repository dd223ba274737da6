"""Programme metrics: what partners' facts and commissions say about the programme.

One partner's applied facts (ledger entries, with its share of each customer fact) and
the commission its postings moved give `PartnerMetrics` over a window of days; groups of
partners (by type, by cohort, by month) add theirs up. Economics (`economics`), the
programme dashboard, the forecast's observed churn and a pilot's arms (`compare`) all
read the same numbers, so no two views can count a renewal differently.

Definitions (docs/programme.md says why):
- attributed revenue is `core.revenue.attributed_revenue` (the what-if's too): the
  partner's share of ACV of new deals, expansion ARR (`subscription.expanded`, expansion
  deals), renewal ARR (`subscription.renewed`, renewal deals) and usage revenue, dated in
  the window;
- commission cost is what the company expensed (earn legs) by rule kind, less what
  went back (forfeited and clawed back): the net;
- a customer is active in a window when one of its contracts with the partner (a new
  deal to its churn) overlaps it; churn rate = churned / active; renewal rate =
  renewals / (renewals + churns): of the contracts that reached a decision;
- time to first value = days from the deal's start_date to the customer's first
  `onboarding_completed` milestone, counted in the window the milestone falls in;
- scores: the `score` that milestones carry (CSAT, NPS), averaged per milestone name;
- a cohort is the quarter of the partner's first deal (its event time), "none" without.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import Decimal

from trailpay.core.facts import (
    DealClosed, MilestoneAchieved, SubscriptionChurned, SubscriptionRenewed,
)
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.money import round_money
from trailpay.core.revenue import REVENUE_KINDS, attributed_revenue

ZERO = Decimal(0)
ONBOARDING = frozenset({"onboarding_completed"})
DAYS_PER_MONTH = Decimal("30.4375")  # 365.25 / 12


@dataclass(frozen=True, slots=True)
class CostLine:
    """Commission one rule kind moved for one partner on one day (from its postings):
    `earned` is what the company expensed, `reversed` what went to forfeited or
    clawed back."""

    partner_id: str
    day: date
    rule_kind: str
    currency: str
    earned: Decimal = ZERO
    reversed: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """What the metrics read of one partner: its type, its applied entries (any order),
    its cost lines."""

    partner_id: str
    type: str
    entries: tuple[LedgerEntry, ...] = ()
    costs: tuple[CostLine, ...] = ()


def day_of(e: LedgerEntry) -> date:
    return e.time.astimezone(UTC).date()


def quarter(d: date) -> str:
    return f"{d.year}Q{(d.month - 1) // 3 + 1}"


def cohort_of(entries: Iterable[LedgerEntry]) -> str:
    """The quarter of the partner's first deal (by event time); "none" without a deal."""
    first = min((day_of(e) for e in entries if isinstance(e.fact, DealClosed)), default=None)
    return quarter(first) if first else "none"


@dataclass(slots=True)
class PartnerMetrics:
    """One partner (or, added up, a group of partners) over one window."""

    partner_id: str
    type: str
    cohort: str
    partners: int = 1
    revenue: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> kind
    cost: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> rule kind
    reversed: dict[str, Decimal] = field(default_factory=dict)  # currency -> back from partner
    active: int = 0  # customers active at some time in the window
    churned: int = 0
    renewals: int = 0
    ttfv_days: list[int] = field(default_factory=list)
    scores: dict[str, list[Decimal]] = field(default_factory=dict)  # milestone -> scores

    def currencies(self) -> list[str]:
        return sorted(set(self.revenue) | set(self.cost) | set(self.reversed))

    def revenue_total(self, currency: str) -> Decimal:
        return sum(self.revenue.get(currency, {}).values(), ZERO)

    def earned(self, currency: str) -> Decimal:
        return sum(self.cost.get(currency, {}).values(), ZERO)

    def net_cost(self, currency: str) -> Decimal:
        return self.earned(currency) - self.reversed.get(currency, ZERO)

    def add(self, other: PartnerMetrics) -> None:
        """Add another partner's metrics to these (a group's)."""
        self.partners += other.partners
        for cur, kinds in other.revenue.items():
            mine = self.revenue.setdefault(cur, {})
            for k, v in kinds.items():
                mine[k] = mine.get(k, ZERO) + v
        for cur, kinds in other.cost.items():
            mine = self.cost.setdefault(cur, {})
            for k, v in kinds.items():
                mine[k] = mine.get(k, ZERO) + v
        for cur, v in other.reversed.items():
            self.reversed[cur] = self.reversed.get(cur, ZERO) + v
        self.active += other.active
        self.churned += other.churned
        self.renewals += other.renewals
        self.ttfv_days.extend(other.ttfv_days)
        for m, scores in other.scores.items():
            self.scores.setdefault(m, []).extend(scores)


def _add(d: dict[str, dict[str, Decimal]], currency: str, kind: str, amount: Decimal) -> None:
    kinds = d.setdefault(currency, {})
    kinds[kind] = kinds.get(kind, ZERO) + amount


def partner_metrics(rec: PartnerRecord, start: date, end: date,
                    cohort: str | None = None) -> PartnerMetrics:
    """A partner's metrics over the days [start, end)."""
    return partner_metrics_by_window(rec, [(start, end)], cohort)[0]


def partner_metrics_by_window(rec: PartnerRecord, windows: Sequence[tuple[date, date]],
                              cohort: str | None = None) -> list[PartnerMetrics]:
    """A partner's metrics over each of these windows ([start, end) days, in order, not
    overlapping), in one pass over its entries: months cost little more than a year."""
    cohort = cohort or cohort_of(rec.entries)
    ms = [PartnerMetrics(rec.partner_id, rec.type, cohort) for _ in windows]
    starts = [w[0] for w in windows]

    def at(day: date) -> PartnerMetrics | None:
        i = bisect_right(starts, day) - 1
        return ms[i] if i >= 0 and day < windows[i][1] else None

    opened: dict[str, date] = {}  # customer -> the day its open contract began
    spans: list[tuple[str, date, date | None]] = []  # (customer, opened, churned or None)
    contract_start: dict[str, date] = {}  # customer -> its deal's start_date
    onboarded: set[str] = set()
    for e in sorted(rec.entries, key=sort_key):
        f, day, cid = e.fact, day_of(e), e.customer_id or ""
        m = at(day)
        if m is not None:
            r = attributed_revenue(e)
            if r is not None:
                _add(m.revenue, *r)
        if isinstance(f, DealClosed):
            if cid not in opened and (f.kind == "new" or cid not in contract_start):
                opened[cid] = day
                contract_start[cid] = f.start_date
            if m is not None:
                m.renewals += f.kind == "renewal"
        elif isinstance(f, SubscriptionChurned):
            since = opened.pop(cid, None)
            if since is not None:
                spans.append((cid, since, day))  # active until it churned
                if m is not None:
                    m.churned += 1
        elif isinstance(f, MilestoneAchieved):  # the first onboarding counts, in any window
            if f.milestone in ONBOARDING and cid not in onboarded and cid in contract_start:
                onboarded.add(cid)
                if m is not None:
                    m.ttfv_days.append((day - contract_start[cid]).days)
            if f.score is not None and m is not None:
                m.scores.setdefault(f.milestone, []).append(f.score)
        elif isinstance(f, SubscriptionRenewed) and m is not None:
            m.renewals += 1
    spans.extend((cid, since, None) for cid, since in opened.items())
    for (w_start, w_end), m in zip(windows, ms, strict=True):
        m.active = len({cid for cid, since, until in spans
                        if since < w_end and (until is None or until >= w_start)})
    for c in rec.costs:
        m = at(c.day)
        if m is not None:
            if c.earned:
                _add(m.cost, c.currency, c.rule_kind, c.earned)
            if c.reversed:
                m.reversed[c.currency] = m.reversed.get(c.currency, ZERO) + c.reversed
    return ms


# --- groups -----------------------------------------------------------------------------------

GROUPINGS = ("type", "cohort", "month")


def months_between(start: date, end: date) -> list[tuple[date, date]]:
    """Calendar months as [first, next first) windows, clipped to [start, end)."""
    out = []
    first = date(start.year, start.month, 1)
    while first < end:
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        out.append((max(first, start), min(nxt, end)))
        first = nxt
    return out


@dataclass(slots=True)
class Group:
    """Partners grouped under one key (type, cohort, month, or a combination), over a window."""

    key: dict[str, str]
    start: date
    end: date
    metrics: PartnerMetrics


def groups(records: Sequence[PartnerRecord], start: date, end: date,
           group_by: Sequence[str]) -> list[Group]:
    """Metrics per group; `group_by` names one or more of GROUPINGS (e.g. ("type", "month"))."""
    for g in group_by:
        if g not in GROUPINGS:
            raise ValueError(f"group_by: {g!r} is not one of {', '.join(GROUPINGS)}")
    windows = months_between(start, end) if "month" in group_by else [(start, end)]
    out: dict[tuple[str, ...], Group] = {}
    for r in records:
        cohort = cohort_of(r.entries)
        for (w_start, w_end), pm in zip(windows, partner_metrics_by_window(r, windows, cohort),
                                        strict=True):
            key = {"type": r.type, "cohort": cohort, "month": w_start.strftime("%Y-%m")}
            chosen = {g: key[g] for g in group_by}
            k = tuple(chosen.values())
            group = out.get(k)
            if group is None:
                first = PartnerMetrics("", r.type if "type" in group_by else "",
                                       chosen.get("cohort", ""), partners=0)
                group = out[k] = Group(chosen, w_start, w_end, first)
            group.metrics.add(pm)
    return [out[k] for k in sorted(out)]


# --- derived figures --------------------------------------------------------------------------

def ratio(a: Decimal, b: Decimal, places: int = 4) -> Decimal | None:
    """a / b to `places` decimals (half-even); None when b is zero."""
    if not b:
        return None
    return (a / b).quantize(Decimal(1).scaleb(-places))


def mean(values: Sequence[Decimal | int]) -> Decimal | None:
    if not values:
        return None
    return sum((Decimal(v) for v in values), ZERO) / len(values)


def window_months(start: date, end: date) -> Decimal:
    return Decimal((end - start).days) / DAYS_PER_MONTH


def money_figures(m: PartnerMetrics, currency: str, start: date, end: date) -> dict[str, object]:
    """A group's money in one currency: revenue, cost, their ratio, payback, retention."""
    rnd = lambda v: round_money(v, currency)  # noqa: E731
    revenue = {k: rnd(m.revenue.get(currency, {}).get(k, ZERO)) for k in REVENUE_KINDS}
    total = sum(revenue.values(), ZERO)
    net = rnd(m.net_cost(currency))
    per_month = total / window_months(start, end) if end > start else ZERO
    after_sale = revenue["expansion"] + revenue["renewal"] + revenue["usage"]
    return {
        "revenue": {**revenue, "total": total},
        "cost": {"by_rule_kind": {k: rnd(v) for k, v in sorted(m.cost.get(currency, {}).items())},
                 "earned": rnd(m.earned(currency)),
                 "reversed": rnd(m.reversed.get(currency, ZERO)), "net": net},
        "cost_per_revenue": ratio(net, total),
        # months of the group's attributed revenue (at the window's monthly pace) that the
        # net commission cost equals
        "payback_months": ratio(net, per_month, 1) if per_month else None,
        # revenue after the initial sale (renewal, expansion, usage) per commission dollar
        "retained_per_commission": ratio(after_sale, net) if net > 0 else None,
    }


def rate_figures(m: PartnerMetrics) -> dict[str, object]:
    """A group's rates, counts and averages (currency-free)."""
    ttfv = mean(m.ttfv_days)
    return {
        "partners": m.partners,
        "customers_active": m.active, "churned": m.churned, "renewals": m.renewals,
        "churn_rate": ratio(Decimal(m.churned), Decimal(m.active)),
        "renewal_rate": ratio(Decimal(m.renewals), Decimal(m.renewals + m.churned)),
        "time_to_first_value_days": ttfv.quantize(Decimal("0.1")) if ttfv is not None else None,
        "onboarded": len(m.ttfv_days),
        "scores": {k: {"mean": mean(v).quantize(Decimal("0.01")), "n": len(v)}  # type: ignore[union-attr]
                   for k, v in sorted(m.scores.items())},
    }
