"""Golden digests: the plan engine's exact output over generated programmes, pinned.

The expected digests below were computed from the ORIGINAL engine (commit 8c5a34d, before
the speed work of issue 6 touched trailpay/core) by running this very file's `digest_*`
functions. They are a golden record of that behaviour, not a specification: any change to
a posting, an amount (down to its Decimal exponent), an explanation, a refusal reason, a
state (including the insertion order of its containers) or its JSON makes them differ.
A deliberate change of behaviour must recompute them and say so in its commit.

Two programmes:
* `bench`: bench.engine's mix (bench.programme, seed 42, scaled to 30,000 events), under the
  bench plan (embedded here, so an edit to the demo plan does not move the digest), folded
  from empty states as bench.engine folds it.
* `rich`: the same generator (seed 7, 20,000 events) plus what the bench mix lacks: monthly
  payout runs with confirmations, failures and unknown payouts, disputes opened and resolved
  (with and without adjustments), EUR partner facts, a command from a wrong source, a second
  plan version mid-year with per-type rules, per-partner overrides; every 50th entry of a
  partner goes through state_to_json/state_from_json as the accrual service stores it.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from typing import Any

from bench.expected import attribute
from bench.programme import generate
from trailpay.core.accrual import AccrualError, accrue, new_state, state_from_json, state_to_json
from trailpay.core.journal import LedgerEntry
from trailpay.core.payouts import payout_id, run_id
from trailpay.core.plans import Enrollment, PlanBook, PlanError, parse_plan
from trailpay.core.postings import PostingGroup
from trailpay.core.state import PartnerState

# Computed from the original engine (commit 8c5a34d); see the module docstring.
GOLDEN_BENCH = "a5a2a3157f2c6ac9fe2f36c1601f16c55068673c91740a3496a94d1d372a6717"
GOLDEN_RICH = "794b80db728976e9ec7e295deb693581afe80118e61fcc7b8cec865bafdabe04"

PLAN_V1: dict[str, Any] = {  # services/demo_data/plan.yaml as bench.programme uses it
    "plan_id": "bench-reseller", "version": 1, "effective_from": "2025-01-01", "currency": "USD",
    "partner_types": ["reseller", "integrator", "value_added_provider"],
    "rules": [
        {"id": "anchor", "kind": "upfront", "base": "acv", "rate": "0.20", "cap": "25000.00",
         "vesting": {"held_pct": "0.50", "release_on": ["onboarding_completed"],
                     "within_days": 90}},
        {"id": "trail", "kind": "recurring", "rates_by_year": {"2": "0.05", "3": "0.07", "4": "0.10"}},
        {"id": "grow", "kind": "expansion", "rate": "0.10"},
        {"id": "usage", "kind": "usage", "rate": "0.03"},
        {"id": "onboarded", "kind": "milestone", "milestone": "onboarding_completed",
         "amount": "500.00"},
        {"id": "refer", "kind": "referral", "amount": "200.00"},
        {"id": "mdf", "kind": "comarketing", "match_rate": "0.50", "cap_per_quarter": "5000.00"},
        {"id": "volume", "kind": "volume_tiers", "tiers": [{"from": "0", "multiplier": "1.0"},
                                                          {"from": "500000", "multiplier": "1.2"}]},
    ],
    "clawback": {"window_days": 180, "mode": "pro_rata"},
    "payout": {"minimum": "100.00", "hold_days": 30, "cadence": "monthly"},
}

PLAN_V2: dict[str, Any] = {
    **PLAN_V1, "version": 2, "effective_from": "2025-09-01",
    "rules": [
        {"id": "anchor", "kind": "upfront", "base": "tcv", "rate": "0.125",
         "cap": {"USD": "30000.00", "EUR": "27000.00"},
         "vesting": {"held_pct": "0.40", "release_on": ["onboarding_completed", "activated"],
                     "within_days": 60}},
        {"id": "trail", "kind": "recurring", "rates_by_year": {"1": "0.01", "2": "0.06"}},
        {"id": "grow", "kind": "expansion", "rate": "0.075", "partner_types": ["reseller"]},
        {"id": "grow-int", "kind": "expansion", "rate": "0.033",
         "partner_types": ["integrator", "value_added_provider"]},
        {"id": "usage", "kind": "usage", "rate": "0.0275", "partner_types": ["reseller", "integrator"]},
        {"id": "onboarded", "kind": "milestone", "milestone": "onboarding_completed",
         "amount": {"USD": "400.00", "EUR": "370.00"}},
        {"id": "happy", "kind": "milestone", "milestone": "csat_scored", "min_score": "8",
         "amount": "125.50"},
        {"id": "refer", "kind": "referral", "amount": "180.00"},
        {"id": "mdf", "kind": "comarketing", "match_rate": "0.45",
         "cap_per_quarter": {"USD": "4000.00", "EUR": "3500.00"}},
        {"id": "volume", "kind": "volume_tiers",
         "tiers": [{"from": "0", "multiplier": "1.0"}, {"from": "100000", "multiplier": "1.1"},
                   {"from": "400000", "multiplier": "1.25"}]},
    ],
    "clawback": {"window_days": 120, "mode": "full"},
    "payout": {"minimum": {"USD": "150.00", "EUR": "100.00"}, "hold_days": 15, "cadence": "monthly"},
}


# --- canonical dumps (every field, Decimals by repr so exponents count) ---------------------


def group_line(g: PostingGroup) -> str:
    x = g.explanation
    head = (g.group_id, g.entry_id, g.journal_seq, g.event_id, g.event_type, g.effective_at,
            g.partner_id, g.customer_id, g.deal_id, x.rule_id, x.rule_kind, x.sentence,
            x.plan_id, x.plan_version, x.base, x.rate, x.multiplier, x.share, x.unrounded)
    legs = [(type(leg).__name__, leg.account, leg.bucket, type(leg.amount).__name__,
             leg.amount.amount, leg.amount.currency, leg.available_on) for leg in g.legs]
    return f"G {head!r} {legs!r}"


def state_lines(s: PartnerState) -> list[str]:
    books = [(k, b.customer_id, b.deal_id, b.currency, b.share, b.start_date, b.term_months, b.arr,
              b.active, b.upfront_rule, b.upfront_rate, b.earned, b.held, b.forfeited,
              b.clawed_back, b.vest_deadline, b.release_on, b.milestones)
             for k, b in s.customers.items()]
    payouts = [(k, p.payout_id, p.currency, p.amount, p.status, p.reference)
               for k, p in s.payouts.items()]
    return [
        f"S {s.partner_id!r}", f"customers {books!r}",
        f"pending {[(c, list(lots.items())) for c, lots in s.pending.items()]!r}",
        f"payable {list(s.payable.items())!r}", f"comarketing {list(s.comarketing.items())!r}",
        f"payouts {payouts!r}", f"last_run {s.last_run!r}", f"disputes {list(s.disputes.items())!r}",
        f"payable_changes {[(c, list(d.items())) for c, d in s.payable_changes.items()]!r}",
        f"vesting_due {list(s.vesting_due.items())!r}", f"json {state_to_json(s)!r}",
    ]


def _attribute(events: list[dict[str, Any]]) -> list[LedgerEntry]:
    """The events attributed as the ledger would, journal seq from 1 (bench.expected's)."""
    return attribute(enumerate(events, start=1))


def _fold_digest(entries: list[LedgerEntry], book: PlanBook, enrollments: dict[str, Enrollment],
                 json_every: int = 0) -> tuple[str, int, int]:
    h = hashlib.sha256()
    states: dict[str, PartnerState] = {}
    seen: dict[str, int] = {}
    applied = refused = 0
    for e in entries:
        state = states.get(e.partner_id) or new_state(e.partner_id)
        seen[e.partner_id] = n = seen.get(e.partner_id, 0) + 1
        if json_every and n % json_every == 0:
            state = state_from_json(state_to_json(state))
        try:
            groups, states[e.partner_id] = accrue(state, e, book, enrollments[e.partner_id])
        except (AccrualError, PlanError) as exc:
            refused += 1
            h.update(f"R {e.entry_id} {type(exc).__name__} {exc}\n".encode())
            continue
        applied += 1
        h.update(f"A {e.entry_id} {len(groups)}\n".encode())
        for g in groups:
            h.update(group_line(g).encode() + b"\n")
    for pid in sorted(states):
        for line in state_lines(states[pid]):
            h.update(line.encode() + b"\n")
    return h.hexdigest(), applied, refused


def digest_bench() -> tuple[str, int, int]:
    prog = generate(42, partners=60, customers=2400, kafka_events=30_000, http_events=0,
                    http_lanes=1)
    events = sorted(prog.kafka, key=lambda e: e["time"])
    plan = parse_plan(PLAN_V1)
    enrollments = {p: Enrollment(p, t, plan.plan_id, {}) for p, t in prog.partners}
    return _fold_digest(_attribute(events), PlanBook([plan]), enrollments)


def _event(n: int, type_: str, day: date, hour: int, data: dict[str, Any],
           source: str = "trailpay.gateway") -> dict[str, Any]:
    return {"id": f"rich-{n:06d}", "source": source, "type": type_,
            "time": f"{day.isoformat()}T{hour:02d}:{n % 60:02d}:00Z", "data": data}


def _extra_events(partners: list[tuple[str, str]], rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = 0

    def add(*args: Any, **kw: Any) -> None:
        nonlocal n
        n += 1
        out.append(_event(n, *args, **kw))

    month = date(2025, 2, 1)
    while month <= date(2026, 7, 1):
        as_of = month - timedelta(days=1)
        for pid, _ in partners:
            if rng.random() < 0.7:
                run = run_id(as_of)
                add("payout.run_requested", as_of, 20,
                    {"partner_id": pid, "run_id": run, "as_of": as_of.isoformat()})
                pick = rng.random()
                later = as_of + timedelta(days=rng.randrange(1, 20))
                for cur in ("USD", "EUR"):
                    pay = payout_id(run, pid, cur)
                    if pick < 0.6:
                        add("payout.confirmed", later, 9,
                            {"payout_id": pay, "reference": f"ERP-{n}", "partner_id": pid})
                        if rng.random() < 0.1:  # the same confirmation again, or a contradiction
                            add("payout.confirmed" if rng.random() < 0.5 else "payout.failed",
                                later + timedelta(days=1), 9,
                                {"payout_id": pay, "reference": f"ERP-{n - 1}", "partner_id": pid})
                    elif pick < 0.8:
                        add("payout.failed", later, 9,
                            {"payout_id": pay, "reference": f"ERP-{n}", "partner_id": pid})
            if rng.random() < 0.05:  # a run from a source that may not send commands
                add("payout.run_requested", as_of, 21,
                    {"partner_id": pid, "run_id": "rogue", "as_of": as_of.isoformat()},
                    source="crm.bench")
            if rng.random() < 0.03:  # a run whose time is not its as_of date
                add("payout.run_requested", as_of + timedelta(days=1), 2,
                    {"partner_id": pid, "run_id": "late", "as_of": as_of.isoformat()})
        month = (month + timedelta(days=32)).replace(day=1)
    for i in range(120):
        pid = rng.choice(partners)[0]
        opened = date(2025, 1, 1) + timedelta(days=rng.randrange(500))
        did = f"DSP-{i}"
        add("dispute.opened", opened, 10, {"partner_id": pid, "dispute_id": did,
                                           "posting_id": f"{i}:{pid}:anchor:0",
                                           "reason": "wrong rate", "opened_by": "partner"})
        closed = opened + timedelta(days=rng.randrange(0, 60))
        outcome = rng.choice(("accepted", "accepted", "rejected", "maybe"))
        data: dict[str, Any] = {"partner_id": pid, "dispute_id": did, "outcome": outcome,
                                "resolved_by": "ops@rich"}
        if rng.random() < 0.6:
            cur = rng.choice(("USD", "USD", "EUR", "JPY", "XXX"))
            data.update(adjustment_currency=cur,
                        adjustment_amount=rng.choice(("125.50", "-40.00", "0.00", "12.345", "99")),
                        adjustment_reason=rng.choice(("", "rate corrected")))
        add("dispute.resolved", closed, 11, data)
        if rng.random() < 0.1:  # resolved twice: the second is refused
            add("dispute.resolved", closed + timedelta(days=1), 11, data)
    for _ in range(200):
        pid = rng.choice(partners)[0]
        d = date(2025, 1, 1) + timedelta(days=rng.randrange(540))
        kind = rng.random()
        if kind < 0.4:
            add("adjustment.posted", d, 12, {
                "partner_id": pid, "currency": rng.choice(("EUR", "USD", "JPY")),
                "amount": rng.choice(("1000.00", "-250.10", "77", "0.005", "12345.67")),
                "reason": "true-up", "approved_by": "ops@rich"}, source="ops.rich")
        elif kind < 0.8:
            add("comarketing.completed", d, 13, {
                "partner_id": pid, "activity": "fair", "currency": rng.choice(("EUR", "USD")),
                "spend": f"{rng.randrange(100, 20000)}.{rng.randrange(100):02d}"}, source="crm.rich")
        else:
            add("referral.qualified", d, 14, {"partner_id": pid, "lead_id": f"RL-{n}"},
                source="crm.rich")
    return out


def digest_rich() -> tuple[str, int, int]:
    prog = generate(7, partners=60, customers=1600, kafka_events=20_000, http_events=0,
                    http_lanes=1)
    rng = random.Random(7)
    events = sorted(prog.kafka + _extra_events(prog.partners, rng), key=lambda e: e["time"])
    v1, v2 = parse_plan(PLAN_V1), parse_plan(PLAN_V2)
    enrollments = {}
    for i, (p, t) in enumerate(prog.partners):
        overrides: dict[str, Any] = {}
        if i % 7 == 0:
            overrides = {"anchor": {"rate": "0.25"}, "mdf": {"cap_per_quarter": "3000.00"}}
        elif i % 11 == 0:
            overrides = {"refer": {"amount": {"USD": "150.00"}}, "grow": {"rate": "0.2"}}
        enrollments[p] = Enrollment(p, t, v1.plan_id, overrides)
    return _fold_digest(_attribute(events), PlanBook([v1, v2]), enrollments, json_every=50)


def test_engine_output_on_the_bench_mix_is_unchanged():
    assert digest_bench() == (GOLDEN_BENCH, 37478, 0)


def test_engine_output_on_a_rich_mix_is_unchanged():
    assert digest_rich() == (GOLDEN_RICH, 26416, 1233)


if __name__ == "__main__":
    import time

    for fn in (digest_bench, digest_rich):
        t = time.perf_counter()
        print(fn.__name__, fn(), f"{time.perf_counter() - t:.1f}s")
