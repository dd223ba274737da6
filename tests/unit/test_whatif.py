"""What-if on the one fold (issue 16), pure core: the live plan replayed equals the defined
fold to the cent; a candidate that changes one rate changes only that rule's lines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from bench.engine import books_for
from bench.expected import attribute, fold
from bench.programme import generate
from trailpay.core.plans import parse_plan
from trailpay.core.whatif import Swap, Tally, compare, replay, summary

EARLY, LATE = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def _programme():
    prog = generate(7, partners=20, customers=300, kafka_events=3_000, http_events=0,
                    http_lanes=1)
    ordered = list(enumerate(sorted(prog.kafka, key=lambda e: e["time"]), start=1))
    return prog, attribute(ordered), books_for(prog)


def test_the_live_plan_replayed_equals_the_defined_fold():
    prog, entries, books = _programme()
    plan = parse_plan(prog.plan)
    swapped = Swap(books, {p: plan for p, _ in prog.partners}, EARLY, LATE)
    got = replay(entries, swapped, EARLY, LATE)
    want, applied, refused = fold(entries, books)
    per_bucket: dict[tuple[str, str, str], Decimal] = {}
    for (p, cur, bucket, _), v in want.items():
        per_bucket[(p, cur, bucket)] = per_bucket.get((p, cur, bucket), 0) + v
    assert {k: v for k, v in got.buckets.items() if v} == {k: v for k, v in per_bucket.items() if v}
    assert (got.applied, got.refused) == (applied, refused)
    assert sum(got.rules.values()) > 0


def test_a_candidate_usage_rate_changes_only_usage_lines_by_revenue_times_the_difference():
    prog, entries, books = _programme()
    plan = parse_plan(prog.plan)
    usage = next(r for r in plan.rules if r.kind == "usage")
    candidate = replace(plan, version=2, rules=tuple(
        replace(r, rate=usage.rate + Decimal("0.02")) if r is usage else r for r in plan.rules))
    start, end = datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    partners = {p: t for p, t in prog.partners}
    live = replay(entries, books, start, end)
    cand = replay(entries, Swap(books, {p: candidate for p in partners}, start, end), start, end)
    changed = {k for k in set(live.rules) | set(cand.rules)
               if live.rules.get(k, 0) != cand.rules.get(k, 0)}
    assert changed and {rule for _, _, rule in changed} == {usage.id}
    # Each usage line is revenue × share × rate, rounded: the difference is 0.02 × the usage
    # revenue of the period, give or take half a cent per line.
    usage_entries = [e for e in entries if e.fact.type == "usage.reported"
                     and start <= e.time < end]
    for p in partners:
        mine = [e for e in usage_entries if e.partner_id == p]
        diff = cand.rules.get((p, "USD", usage.id), 0) - live.rules.get((p, "USD", usage.id), 0)
        expect = sum((e.fact.revenue * e.share * Decimal("0.02") for e in mine), Decimal(0))
        assert abs(diff - expect) <= Decimal("0.01") * len(mine), p
    rows = compare(live, cand, partners)
    total = next(s for s in summary(rows) if s["level"] == "total")
    assert total["figures"]["cost"]["difference"] == total["figures"][f"rule:{usage.id}"][
        "difference"] > 0
    assert total["cost_share"]["candidate"] > total["cost_share"]["actual"]


def test_tallies_of_disjoint_partners_merge():
    a, b = Tally(rules={("P1", "USD", "r"): Decimal(1)}, entries=1), Tally(
        rules={("P2", "USD", "r"): Decimal(2)}, entries=2)
    a.merge(b)
    assert a.rules == {("P1", "USD", "r"): 1, ("P2", "USD", "r"): 2} and a.entries == 3


def test_the_what_if_and_the_programme_metrics_count_the_same_revenue():
    """One definition (core.revenue): a replay's revenue per partner and currency equals
    the programme metrics' attributed revenue over the same days."""
    from datetime import date

    from trailpay.core.programme.metrics import PartnerRecord, partner_metrics

    prog, entries, books = _programme()
    start, end = datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    tally = replay(entries, books, start, end)
    by_partner: dict[str, list] = {}
    for e in entries:
        by_partner.setdefault(e.partner_id, []).append(e)
    metrics: dict[tuple[str, str], Decimal] = {}
    for p, es in by_partner.items():
        m = partner_metrics(PartnerRecord(p, "reseller", tuple(es)), date(2025, 7, 1),
                            date(2026, 1, 1))
        for cur in m.revenue:
            metrics[(p, cur)] = m.revenue_total(cur)
    assert {k: v for k, v in tally.revenue.items() if v} == {k: v for k, v in metrics.items()
                                                             if v}
    assert len(metrics) > 10 and sum(metrics.values()) > 0
