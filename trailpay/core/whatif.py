"""What-if: the recorded facts folded again with other plan terms, for some partners, in a period.

A simulation is the one fold (core.fold) that live accrual is defined by; the only thing
that differs is the plan book some entries are accrued with (`Swap`). So a what-if of the
live plans equals the live books, and a candidate that changes one rule changes exactly
what that rule produced. Nothing here writes anywhere: the result is a `Tally` of sums,
which adapters store in the simulation tables, apart from postings and balances.

Figures, per partner and currency (design §3 buckets; cost = what the commission expense
account was charged, the sum of the company legs; forfeits and clawbacks move only the
partner's buckets, so they are not netted here, unlike the programme metrics' net cost;
revenue = attributed revenue, core.revenue's):
  bucket movements of the postings dated in the period, cost per rule, revenue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from trailpay.core.fold import Books, fold
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.money import round_money
from trailpay.core.plans import Books as LiveBooks, PlanHistory, PlanVersion, enrollment_at
from trailpay.core.postings import BUCKETS, COMPANY_ACCOUNT
from trailpay.core.revenue import attributed_revenue
from trailpay.core.state import new_state

PlanRef = PlanVersion | PlanHistory  # a candidate version, or a whole published plan
LEVELS = ("partner", "type", "total")


class Fixed:
    """A plan book holding one candidate version, in force on every date it is asked for."""

    __slots__ = ("plan",)

    def __init__(self, plan: PlanVersion) -> None:
        self.plan = plan

    def in_force(self, on: date) -> PlanVersion:
        return self.plan


class Swap:
    """Books in which chosen partners' entries dated in [start, end) are accrued with other
    terms: a candidate version (every entry of the period) or another published plan (the
    version of it in force, as live). The partner keeps its type and overrides."""

    __slots__ = ("books", "plans", "start", "end", "_fixed")

    def __init__(self, books: LiveBooks, plans: Mapping[str, PlanRef], start: datetime,
                 end: datetime) -> None:
        self.books = books
        self.plans = plans
        self.start = start
        self.end = end
        self._fixed: dict[int, Fixed] = {}

    def __call__(self, e: Any, seen: int = 0) -> tuple[Any, Any]:
        plan = self.plans.get(e.partner_id)
        if plan is None or not self.start <= e.time < self.end:
            return self.books(e, seen)
        enrollment = enrollment_at(self.books.enrollments.get(e.partner_id, ()), e.time)
        if isinstance(plan, PlanVersion):
            book: Any = self._fixed.get(id(plan)) or self._fixed.setdefault(id(plan), Fixed(plan))
        else:
            book = plan.book_before(max(e.journal_seq, seen))
        return book, replace(enrollment, plan_id=plan.plan_id)

    def __getstate__(self) -> tuple:
        return self.books, self.plans, self.start, self.end

    def __setstate__(self, s: tuple) -> None:
        self.books, self.plans, self.start, self.end = s
        self._fixed = {}


@dataclass
class Tally:
    """Sums keyed by partner and currency; tallies of disjoint partners merge by update."""

    buckets: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # p, cur, bucket
    rules: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # p, cur, rule: cost
    revenue: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    entries: int = 0
    applied: int = 0
    refused: int = 0

    def merge(self, other: Tally) -> None:
        for mine, theirs in ((self.buckets, other.buckets), (self.rules, other.rules),
                             (self.revenue, other.revenue)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v  # type: ignore[index]
        self.entries += other.entries
        self.applied += other.applied
        self.refused += other.refused

    def add_groups(self, groups: Iterable[Any], start: datetime, end: datetime) -> None:
        """Count the legs of posting groups dated in [start, end)."""
        buckets, rules, company = self.buckets, self.rules, COMPANY_ACCOUNT
        for g in groups:
            if not start <= g.effective_at < end:
                continue
            rule = g.explanation.rule_id
            for leg in g.legs:
                m = leg.amount
                if leg.account == company:
                    k = (g.partner_id, m.currency, rule)
                    rules[k] = rules.get(k, 0) - m.amount
                else:
                    kb = (g.partner_id, m.currency, leg.bucket)
                    buckets[kb] = buckets.get(kb, 0) + m.amount


def replay(entries: Iterable[LedgerEntry], books: Books, start: datetime, end: datetime,
           progress: Callable[[int], None] | None = None, every: int = 5_000) -> Tally:
    """Fold every partner's entries dated before `end` (design §4 order, from nothing) and
    tally what is dated in [start, end). `progress(n)` is told of each `every` entries."""
    by_partner: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        if e.time < end:
            by_partner.setdefault(e.partner_id, []).append(e)
    out, told = Tally(), 0
    for partner, es in sorted(by_partner.items()):
        es.sort(key=sort_key)
        folded = fold(new_state(partner), es, books)
        out.entries += len(es)
        out.applied += folded.applied
        out.refused += len(folded.refused)
        out.add_groups(folded.groups, start, end)
        for e in es:
            if start <= e.time:
                r = attributed_revenue(e)
                if r is not None:
                    k = (partner, r[0])
                    out.revenue[k] = out.revenue.get(k, 0) + r[2]
        if progress is not None and out.entries - told >= every:
            progress(out.entries - told)
            told = out.entries
    if progress is not None and out.entries > told:
        progress(out.entries - told)
    return out


# --- comparing actual with candidate ----------------------------------------------------------

Row = tuple[str, str, str, str, Decimal, Decimal]  # level, key, currency, figure, actual, cand.


def compare(actual: Tally, candidate: Tally, types: Mapping[str, str]) -> list[Row]:
    """Rows of every figure, actual against candidate, per partner, per partner type and in
    total. Figures: the buckets, `cost`, `rule:<id>` (cost per rule) and `revenue`; amounts
    rounded to the currency's minor unit. Revenue is the facts' own: the same on both sides."""
    sums: dict[tuple[str, str, str, str], list[Decimal]] = {}

    def add(partner: str, currency: str, figure: str, side: int, amount: Decimal) -> None:
        for level, key in (("partner", partner), ("type", types.get(partner, "?")),
                           ("total", "all")):
            cell = sums.setdefault((level, key, currency, figure), [Decimal(0), Decimal(0)])
            cell[side] += amount

    for side, t in enumerate((actual, candidate)):
        for (p, c, bucket), v in t.buckets.items():
            add(p, c, bucket, side, v)
        for (p, c, rule), v in t.rules.items():
            add(p, c, f"rule:{rule}", side, v)
            add(p, c, "cost", side, v)
    for (p, c), v in candidate.revenue.items():
        add(p, c, "revenue", 0, v)
        add(p, c, "revenue", 1, v)
    partners = {p for t in (actual, candidate) for p, *_ in (*t.buckets, *t.rules, *t.revenue)}
    for p in partners:  # every partner and currency shows its cost, zero or not
        for c in {k[1] for t in (actual, candidate) for k in (*t.rules, *t.revenue)
                  if k[0] == p}:
            add(p, c, "cost", 0, Decimal(0))
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    return [(lvl, key, cur, fig, round_money(a, cur), round_money(b, cur))
            for (lvl, key, cur, fig), (a, b) in sorted(
                sums.items(), key=lambda kv: (order[kv[0][0]], *kv[0][1:]))]


def cost_share(cost: Decimal, revenue: Decimal) -> Decimal | None:
    """Commission as a share of attributed revenue (4 places); None without revenue."""
    return (cost / revenue).quantize(Decimal("0.0001")) if revenue else None


def summary(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows grouped per (level, key, currency) into {figure: {actual, candidate}} plus the
    cost share of revenue on each side: the shape the API and the CLI show."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for level, key, cur, fig, a, b in rows:
        item = out.setdefault((level, key, cur), {"level": level, "key": key, "currency": cur,
                                                  "figures": {}})
        item["figures"][fig] = {"actual": a, "candidate": b, "difference": b - a}
    for item in out.values():
        figs = item["figures"]
        zero = round_money(Decimal(0), item["currency"])
        for b in BUCKETS:
            figs.setdefault(b, {"actual": zero, "candidate": zero, "difference": zero})
        cost = figs.get("cost", {"actual": Decimal(0), "candidate": Decimal(0)})
        revenue = figs.get("revenue", {}).get("actual", Decimal(0))
        item["cost_share"] = {side: cost_share(cost[side], revenue)
                              for side in ("actual", "candidate")}
    return list(out.values())
