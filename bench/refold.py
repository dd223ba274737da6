"""The time to fold one partner's history again for one late entry (issue 13), pure core.

One partner with 50,000 entries in the year before its last one: the programme
generator's mix (deals, renewals, expansions, contractions, usage, milestones, refunds,
churn, referrals, co-marketing) with every customer's deal given to that one partner
alone, attributed as the ledger does and applied in order to a core.timeline.Timeline.
Then `samples` late entries of varied kinds, each dated uniformly at random up to 90 days
before the last entry, each arriving on its own copy of that timeline. What is timed is
`Timeline.arrive([late])`: what a live accrual computes for the partner when one late
entry comes (the history folded again from a snapshot before it, the correction groups),
not the database work around it. The garbage collector is set as the services set it
(Settings.gc_young_threshold); a collection that falls inside a sample counts.

`python -m bench.refold [samples]` (or `make bench-refold`) prints p50/p99 in ms.
"""

from __future__ import annotations

import copy
import gc
import math
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.engine import books_for
from bench.expected import attribute
from bench.load import percentile
from bench.programme import generate
from trailpay.core.attribution import entries_for
from trailpay.core.facts import PartnerShare, fact_from_data
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.timeline import Timeline
from trailpay.settings import Settings

PARTNER = "P-0000"
CUSTOMERS, EVENTS = 4_500, 59_200  # 50,090 of the entries in the last year (seed 42)
LATE_DAYS = 90
TARGET_P99_MS = 50
# Kinds of late entry, weighted like the programme's mix of these kinds (usage most).
KINDS = {"usage.reported": 70, "milestone.achieved": 12, "deal.closed": 8,
         "subscription.expanded": 5, "referral.qualified": 5}
_SOURCES = {"usage.reported": "billing.bench", "subscription.expanded": "billing.bench",
            "milestone.achieved": "cs.bench", "deal.closed": "crm.bench",
            "referral.qualified": "crm.bench"}


@dataclass
class _OnePartner:
    """What books_for needs of a programme."""

    plan: dict[str, Any]
    partners: list[tuple[str, str]]


def _one_partner(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["data"])
    if "partners" in data:
        data["partners"] = [{"partner_id": PARTNER, "role": "sourced", "share": "1"}]
    elif "partner_id" in data:
        data["partner_id"] = PARTNER
    return {**event, "data": data}


def history(seed: int = 42, customers: int = CUSTOMERS, events: int = EVENTS
            ) -> tuple[list[LedgerEntry], Any]:
    """The partner's entries in sort order, and the books (plan, enrolment) they use."""
    prog = generate(seed, partners=51, customers=customers, kafka_events=events,
                    http_events=0, http_lanes=1)
    ordered = sorted((_one_partner(e) for e in prog.kafka), key=lambda e: e["time"])
    entries = sorted(attribute(enumerate(ordered, start=1)), key=sort_key)
    return entries, books_for(_OnePartner(prog.plan, [(PARTNER, "reseller")]))


def _money(rng: random.Random, lo: float, hi: float) -> str:
    return f"{Decimal(rng.uniform(lo, hi)).quantize(Decimal('0.01'))}"


def late_entry(rng: random.Random, n: int, when: datetime, recorded: datetime,
               deals: list[tuple[datetime, str]]) -> LedgerEntry:
    """A fact of a random kind dated `when`, recorded (attributed) at `recorded`; a customer
    fact names a customer whose deal was before `when` (`deals`: (time, customer), sorted)."""
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    day = when.date()
    known = [c for t, c in deals[:_before(deals, when)]]
    cid = rng.choice(known)
    if kind == "deal.closed":
        cid = f"C-LATE-{n:04d}"
        acv = min(max(rng.lognormvariate(math.log(30000), 0.9), 2000), 600000)
        data: dict[str, Any] = {
            "deal_id": f"D-{cid}", "customer_id": cid, "kind": "new", "currency": "USD",
            "acv": f"{acv:.2f}", "tcv": f"{acv:.2f}", "term_months": 12,
            "start_date": day.isoformat(),
            "partners": [{"partner_id": PARTNER, "role": "sourced", "share": "1"}]}
    elif kind == "usage.reported":
        first = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
        qty = rng.randrange(100, 100000)
        data = {"customer_id": cid, "currency": "USD", "metric": "api_calls",
                "quantity": qty, "revenue": _money(rng, qty * 0.01, qty * 0.2),
                "period_start": first.isoformat(),
                "period_end": (day.replace(day=1) - timedelta(days=1)).isoformat()}
    elif kind == "milestone.achieved":
        data = {"customer_id": cid, "milestone": rng.choice(("onboarding_completed",
                                                             "activated"))}
    elif kind == "subscription.expanded":
        data = {"customer_id": cid, "currency": "USD", "delta_arr": _money(rng, 1000, 20000),
                "effective_date": day.isoformat()}
    else:
        data = {"partner_id": PARTNER, "lead_id": f"L-LATE-{n:04d}"}
    fact = fact_from_data(kind, data)
    share = (PartnerShare(PARTNER, "sourced", Decimal(1)),)
    if fact.partner_level:
        share = (PartnerShare(PARTNER, "owner", Decimal(1)),)
    deal_id = None if fact.partner_level else f"D-{cid}"
    return entries_for(10_000_000 + n, f"bench-late-{n:04d}", _SOURCES[kind], when, fact,
                       share, deal_id, recorded)[0]


def _before(deals: list[tuple[datetime, str]], when: datetime) -> int:
    lo, hi = 0, len(deals)
    while lo < hi:
        mid = (lo + hi) // 2
        if deals[mid][0] < when:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _copy(t: Timeline) -> Timeline:
    """A timeline that can take an entry without changing `t` (states are values; the
    containers that arrive() changes in place are copied)."""
    c = copy.copy(t)
    for name in type(t).__slots__:
        value = getattr(c, name)
        if isinstance(value, list | dict):
            setattr(c, name, value.copy())
    return c


def run(samples: int = 200, seed: int = 42) -> dict[str, Any]:
    entries, books = history(seed)
    last = entries[-1].time
    in_year = sum(1 for e in entries if e.time > last - timedelta(days=365))
    in_window = sum(1 for e in entries if e.time > last - timedelta(days=LATE_DAYS))
    threshold = Settings.model_fields["gc_young_threshold"].default
    old_threshold = gc.get_threshold()
    if threshold:
        gc.set_threshold(threshold, 20, 100)  # as the service processes run (services/cli.py)
    try:
        started = time.perf_counter()
        base = Timeline(PARTNER)
        built = base.arrive(entries, books)
        build_s = time.perf_counter() - started
        rng = random.Random(seed)
        deals = sorted((e.time, e.customer_id) for e in entries if e.fact.type == "deal.closed")
        recorded = last + timedelta(hours=1)
        ms: list[float] = []
        refolded: list[int] = []
        by_kind: dict[str, list[tuple[float, int]]] = {}
        corrections = refused = 0
        for n in range(samples):
            when = last - timedelta(seconds=rng.uniform(1, LATE_DAYS * 86400))
            e = late_entry(rng, n, when, recorded, deals)
            t = _copy(base)
            t0 = time.perf_counter()
            arrival = t.arrive([e], books)
            ms.append((time.perf_counter() - t0) * 1000)
            refolded.append(arrival.refolded)
            by_kind.setdefault(e.fact.type, []).append((ms[-1], arrival.refolded))
            corrections += sum(1 for g in arrival.groups if ":correction:" in g.group_id)
            refused += len(arrival.refused)
    finally:
        gc.set_threshold(*old_threshold)
    return {
        "refold_partner_entries": len(entries), "refold_entries_last_year": in_year,
        "refold_entries_last_90_days": in_window, "refold_build_refused": len(built.refused),
        "refold_build_seconds": build_s, "refold_samples": samples,
        "refold_p50_ms": percentile(ms, 50), "refold_p90_ms": percentile(ms, 90),
        "refold_p95_ms": percentile(ms, 95),
        "refold_p99_ms": percentile(ms, 99), "refold_max_ms": max(ms),
        "refold_mean_ms": sum(ms) / len(ms),
        "refold_mean_entries": sum(refolded) / len(refolded),
        "refold_us_per_entry": sum(ms) * 1000 / max(1, sum(refolded)),
        "refold_corrections_per_late_entry": corrections / samples,
        "refold_late_refused": refused,
        "refold_by_kind": {k: _kind_figures(v) for k, v in sorted(by_kind.items())},
    }


def _kind_figures(samples: list[tuple[float, int]]) -> dict[str, float]:
    """One kind of late entry: how many, p50/p99/max in ms, and entries folded again."""
    ms = [m for m, _ in samples]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms), "mean_entries": sum(n for _, n in samples) / len(samples)}


def report(r: dict[str, Any]) -> str:
    ok = "meets" if r["refold_p99_ms"] <= TARGET_P99_MS else "MISSES"
    return (f"one partner, {r['refold_partner_entries']:,} entries "
            f"({r['refold_entries_last_year']:,} in the last year, "
            f"{r['refold_entries_last_90_days']:,} in the last {LATE_DAYS} days); "
            f"{r['refold_samples']} late entries up to {LATE_DAYS} days back, each on its own "
            f"copy:\n  re-fold p50 {r['refold_p50_ms']:,.1f} ms, p90 {r['refold_p90_ms']:,.1f}, "
            f"p99 {r['refold_p99_ms']:,.1f}, max {r['refold_max_ms']:,.1f} "
            f"({ok} p99 ≤ {TARGET_P99_MS} ms); {r['refold_mean_entries']:,.0f} entries folded "
            f"again per late entry on average, {r['refold_us_per_entry']:,.1f} µs each; "
            f"{r['refold_corrections_per_late_entry']:.1f} correction groups per late entry, "
            f"{r['refold_late_refused']} refused; history built in "
            f"{r['refold_build_seconds']:.1f} s"
            + "".join(f"\n    {kind:<22} n={f['n']:<3} p50 {f['p50_ms']:6.1f} ms, p99 "
                      f"{f['p99_ms']:6.1f}, max {f['max_ms']:6.1f}; "
                      f"{f['mean_entries']:,.0f} entries folded again on average"
                      for kind, f in r["refold_by_kind"].items()))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(report(run(n)))
