"""Design §4: a partner's money is a function of the set of its facts, never of their order.

Random programmes (every fact kind, several partners and customers, payout runs in between)
are attributed in time order, then delivered to the accrual's timelines in a random arrival
order and a random split into batches. What they post must net, per (partner, customer,
rule, account, bucket, currency, available_on), to the defined fold: each partner's entries
sorted by (event time, source, id) and folded from nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.kit import deal, fact
from tests.unit.test_engine_properties import BOOK, programmes
from trailpay.core.attribution import customer_after, entries_for, partners_of
from trailpay.core.facts import COMMAND_SOURCE, PartnerShare, PayoutRunRequested
from trailpay.core.fold import fold_partners
from trailpay.core.journal import LedgerEntry
from trailpay.core.payouts import run_id
from trailpay.core.plans import Enrollment
from trailpay.core.postings import month_of
from trailpay.core.timeline import Timeline
from trailpay.adapters.fastjson import entry_json
from trailpay.adapters.rebuild_worker import fold as rebuild_fold
from trailpay.core.journal import sort_key
from trailpay.core.postings import add_partner_legs

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENROLLED = {p: Enrollment(p, "reseller", "p") for p in ("P0", "P1", "P2")}


def books(e: LedgerEntry, seen: int = 0):
    return BOOK, ENROLLED[e.partner_id]


def attribute(programme, runs: bool) -> list[LedgerEntry]:
    customers: dict = {}
    out: list[LedgerEntry] = []
    seq = 0
    for day, f in programme:
        seq += 1
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        cust = None if f.partner_level else customers.get(f.customer_id)
        who = partners_of(f, cust)
        if who is not None:
            out += entries_for(seq, f"e{seq}", "crm", at, f, who,
                               cust.deal_id if cust else None, at + timedelta(days=1))
        if not f.partner_level:
            after = customer_after(f, customers.get(f.customer_id))
            if after is not None:
                customers[f.customer_id] = after
        if runs and day.day > 20:  # a run as of the day, for every partner
            for p in ENROLLED:
                seq += 1
                run = PayoutRunRequested(p, run_id(day), day)
                end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
                out += entries_for(seq, f"run-{day}-{p}", COMMAND_SOURCE, end, run,
                                   partners_of(run, None), None, end)
    return out


def deliver(entries: list[LedgerEntry], cuts: list[int]):
    """Arrival in the given order, in batches cut at `cuts`; every group posted."""
    timelines: dict[str, Timeline] = {}
    posted = []
    bounds = [0, *sorted(set(cuts)), len(entries)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        by_partner: dict[str, list[LedgerEntry]] = defaultdict(list)
        for e in entries[a:b]:
            by_partner[e.partner_id].append(e)
        for p, es in by_partner.items():
            t = timelines.setdefault(p, Timeline(p))
            posted += t.arrive(es, books).groups
    return posted, timelines


def nets(groups, months: bool = False) -> dict[tuple, Decimal]:
    out: dict[tuple, Decimal] = defaultdict(Decimal)
    for g in groups:
        for leg in g.legs:
            k = (g.partner_id, g.customer_id, g.explanation.rule_id, leg.account, leg.bucket,
                 leg.amount.currency, leg.available_on)
            out[(month_of(g.effective_at), *k) if months else k] += leg.amount.amount
    return {k: v for k, v in out.items() if v}


def money_by_bucket(groups) -> dict[tuple, Decimal]:
    """Per (partner, currency, bucket), with payable, in_payout and paid as one: what a run
    pays depends on what it knew when it ran (design §4: paid money stays paid)."""
    out: dict[tuple, Decimal] = defaultdict(Decimal)
    for g in groups:
        for leg in g.legs:
            bucket = "earned" if leg.bucket in ("payable", "in_payout", "paid") else leg.bucket
            out[(leg.account, leg.amount.currency, bucket)] += leg.amount.amount
    return {k: v for k, v in out.items() if v}


def orders(entries):
    return st.permutations(entries).flatmap(
        lambda order: st.tuples(st.just(order), st.lists(st.integers(0, len(order)), max_size=6)))


@PROPS
@given(st.data(), programmes())
def test_any_arrival_order_and_batching_nets_to_the_sorted_fold(data, programme):
    entries = attribute(programme, runs=False)
    defined = fold_partners(entries, books)
    order, cuts = data.draw(orders(entries))
    posted, timelines = deliver(list(order), cuts)
    assert nets(posted) == nets(g for f in defined.values() for g in f.groups)
    for p, t in timelines.items():  # and the state the accrual keeps is the defined one
        assert t.state.customers == defined[p].state.customers
        assert t.state.payable == defined[p].state.payable
        assert t.state.pending == defined[p].state.pending


@PROPS
@given(st.data(), programmes())
def test_a_rebuild_replaying_the_recorded_arrivals_posts_the_same_months(data, programme):
    """The accrual folds a batch's late entries together, so which month a correction
    shows in depends on the batching; the rebuild replays the arrivals it recorded
    (accrual_applied.arrival, in order of application) and posts the same amounts in the
    same months, balance by balance."""
    entries = attribute(programme, runs=True)
    order, cuts = data.draw(orders(entries))
    live, _ = deliver(list(order), cuts)
    rows = []  # accrual_applied as the live accrual wrote it: each batch sorted, one arrival
    bounds = [0, *sorted(set(cuts)), len(order)]
    for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        rows += [(entry_json(e), None if b - a == 1 else n)
                 for e in sorted(order[a:b], key=sort_key)]
    rebuilt = rebuild_fold(rows, books)
    balances: dict = {}
    months: dict = {}
    add_partner_legs(balances, live, months)
    assert {k: v for k, v in rebuilt.balances.items() if v} == {
        k: v for k, v in balances.items() if v}
    assert {k: v for k, v in rebuilt.months.items() if v} == {
        k: v for k, v in months.items() if v}


def test_the_late_entries_of_one_arrival_fold_the_history_again_once():
    """A backfill of many facts in one batch costs one re-fold, not one per fact."""
    programme = [(datetime(2026, 1, 1, tzinfo=UTC).date() + timedelta(days=3 * i),
                  deal(customer=f"C{i}", acv="1000.00", partners=[("P0", "1")],
                       deal_id=f"D{i}")) for i in range(40)]
    entries = attribute(programme, runs=False)
    t = Timeline("P0")
    t.arrive(entries[1::2], books)  # every other deal first
    late = t.arrive(entries[0::2], books)  # then the rest, all late
    assert late.refolds == 1 and late.refolded >= 20
    defined = fold_partners(entries, books)["P0"]
    assert t.state.customers == defined.state.customers and t.state.payable == defined.state.payable


@PROPS
@given(st.data(), programmes())
def test_payout_runs_in_between_keep_every_cent(data, programme):
    entries = attribute(programme, runs=True)
    defined = fold_partners(entries, books)
    order, cuts = data.draw(orders(entries))
    posted, _ = deliver(list(order), cuts)
    assert money_by_bucket(posted) == money_by_bucket(
        g for f in defined.values() for g in f.groups)


@PROPS
@given(st.data(), programmes())
def test_runs_that_know_every_earlier_fact_pay_exactly_the_sorted_fold(data, programme):
    """Facts in any order; each payout run arrives once every fact dated before it has
    (later facts may come before it): then even the amounts paid equal the sorted fold."""
    entries = attribute(programme, runs=True)
    defined = fold_partners(entries, books)
    facts = list(data.draw(st.permutations([e for e in entries if e.source != COMMAND_SOURCE])))
    order = list(facts)
    for run in sorted((e for e in entries if e.source == COMMAND_SOURCE), key=lambda e: e.time):
        p = run.partner_id
        at = 1 + max((i for i, e in enumerate(order) if e.partner_id == p and (
            e.source == COMMAND_SOURCE or e.time < run.time)), default=-1)
        order.insert(at, run)
    posted, _ = deliver(order, data.draw(st.lists(st.integers(0, len(order)), max_size=4)))
    assert nets(posted) == nets(g for f in defined.values() for g in f.groups)


def test_a_refused_late_entry_is_reported_and_folds_nothing_again():
    """Issue 13: an entry the engine refuses is dead-lettered with its reason, never blocks
    the partner's later entries, and a refused late entry triggers no re-fold."""
    def entry(seq: int, day: str, f):
        at = datetime.fromisoformat(f"{day}T12:00:00+00:00")
        return entries_for(seq, f"e{seq}", "crm", at, f, partners_of(f, None) or (
            (PartnerShare("P1", "sourced", Decimal(1)),)), "D-C1", at)[0]

    t = Timeline("P1")
    first = t.arrive([entry(1, "2026-01-10", deal(customer="C1", acv="1000.00",
                                                  partners=[("P1", "1")], deal_id="D-C1")),
                      entry(2, "2026-03-01", fact("usage.reported", customer_id="C1",
                                                  currency="USD", metric="m", quantity="1",
                                                  revenue="100.00", period_start="2026-03-01",
                                                  period_end="2026-03-01"))], books)
    assert not first.refused and first.refolds == 0
    # A second new deal for the active customer, dated before the usage: refused, late.
    late = t.arrive([entry(3, "2026-02-01", deal(customer="C1", acv="5000.00",
                                                 partners=[("P1", "1")], deal_id="D-C1"))],
                    books)
    assert [why for _, why in late.refused] == [
        "data.kind: customer C1 already has an active contract (deal D-C1) with partner P1; "
        "send a further deal as kind renewal or expansion"]
    assert late.refolds == 0 and late.groups == []
    after = t.arrive([entry(4, "2026-04-01", fact("usage.reported", customer_id="C1",
                                                  currency="USD", metric="m", quantity="1",
                                                  revenue="100.00", period_start="2026-04-01",
                                                  period_end="2026-04-01"))], books)
    assert not after.refused and after.groups  # the partner's next entry goes on
