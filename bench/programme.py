"""A realistic partner programme, generated from a seed: partners, customers, a year of deals
and the facts that follow them (renewals, expansions, contractions, usage, milestones,
refunds, churn, referrals, co-marketing, adjustments), as valid CloudEvents.

The same seed gives the same programme, event for event, on any machine. Each
customer's facts travel one path only (Kafka, or HTTP), in time order with its deal
first, so nothing is parked and a partner's entries reach the accrual service in
journal order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

PLAN_FILE = Path(__file__).resolve().parents[1] / "services" / "demo_data" / "plan.yaml"
PLAN_ID = "bench-reseller"
PARTNER_TYPES = ("reseller", "integrator", "value_added_provider")
DEALS_FROM, DEALS_TO = date(2025, 1, 1), date(2025, 12, 31)  # a year of deals
WINDOW_END = date(2026, 6, 30)  # facts that follow the deals (first renewals fall here)


def plan_document() -> dict[str, Any]:
    """The design's example plan (services/demo_data/plan.yaml), in force from 2025."""
    doc = yaml.safe_load(PLAN_FILE.read_text())
    doc.update(plan_id=PLAN_ID, version=1, effective_from="2025-01-01")
    return doc


@dataclass
class Programme:
    seed: int
    plan: dict[str, Any]
    partners: list[tuple[str, str]]  # (partner_id, type)
    kafka: list[dict[str, Any]] = field(default_factory=list)  # in send order
    http: list[dict[str, Any]] = field(default_factory=list)  # in send order, per HTTP lane
    http_lanes: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        by_type: dict[str, int] = {}
        for e in self.kafka + self.http:
            by_type[e["type"]] = by_type.get(e["type"], 0) + 1
        return dict(sorted(by_type.items()))


def _money(x: float) -> str:
    return f"{Decimal(max(x, 0.01)).quantize(Decimal('0.01'))}"


def _at(rng: random.Random, day: date) -> str:
    t = datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(10 * 3600))
    return t.isoformat().replace("+00:00", "Z")


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, 28))


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0

    def event(self, type_: str, day: date, data: dict[str, Any], source: str) -> dict[str, Any]:
        self.n += 1
        return {"specversion": "1.0", "id": f"bench-{self.n:07d}", "source": source,
                "type": type_, "time": _at(self.rng, day),
                "datacontenttype": "application/json", "data": data}


def _customer_facts(b: _Builder, cid: str, partners: list[tuple[str, str, str]]
                    ) -> tuple[list[dict], list[tuple[date, date, str]]]:
    """A customer's deal and the facts after it; returns (events, usage slots)."""
    rng = b.rng
    start = DEALS_FROM + timedelta(days=rng.randrange((DEALS_TO - DEALS_FROM).days + 1))
    term = rng.choices((12, 24, 36), (70, 20, 10))[0]
    acv = min(max(rng.lognormvariate(math.log(30000), 0.9), 2000), 600000)
    arr = Decimal(_money(acv))
    out = [b.event("deal.closed", start, {
        "deal_id": f"D-{cid}", "customer_id": cid, "kind": "new", "currency": "USD",
        "acv": str(arr), "tcv": _money(acv * term / 12), "term_months": term,
        "start_date": start.isoformat(),
        "partners": [{"partner_id": p, "role": role, "share": share} for p, role, share in partners],
    }, "crm.bench")]
    churn = None
    if rng.random() < 0.10:
        churn = start + timedelta(days=rng.randrange(20, 420))
    end = min(WINDOW_END, churn) if churn else WINDOW_END

    def when(lo: int, hi: int) -> date | None:
        d = start + timedelta(days=rng.randrange(lo, hi))
        return d if d < end else None

    if rng.random() < 0.75 and (d := when(5, 130)):  # some after the 90-day vesting deadline
        out.append(b.event("milestone.achieved", d, {"customer_id": cid,
                                                     "milestone": "onboarding_completed"}, "cs.bench"))
    if rng.random() < 0.5 and (d := when(10, 200)):
        out.append(b.event("milestone.achieved", d, {"customer_id": cid,
                                                     "milestone": "activated"}, "cs.bench"))
    if rng.random() < 0.3 and (d := when(30, 300)):
        out.append(b.event("milestone.achieved", d, {"customer_id": cid, "milestone": "csat_scored",
                                                     "score": rng.randrange(4, 11)}, "cs.bench"))
    for _ in range(rng.choices((0, 1, 2), (65, 25, 10))[0]):
        if d := when(30, 500):
            delta = Decimal(_money(float(arr) * rng.uniform(0.05, 0.5)))
            out.append(b.event("subscription.expanded", d, {
                "customer_id": cid, "currency": "USD", "delta_arr": str(delta),
                "effective_date": d.isoformat()}, "billing.bench"))
            arr += delta
    if rng.random() < 0.08 and (d := when(60, 500)):
        delta = Decimal(_money(float(arr) * rng.uniform(0.05, 0.3)))
        out.append(b.event("subscription.contracted", d, {
            "customer_id": cid, "currency": "USD", "delta_arr": str(delta),
            "effective_date": d.isoformat()}, "billing.bench"))
        arr -= delta
    if rng.random() < 0.04 and (d := when(10, 170)):
        out.append(b.event("refund.issued", d, {
            "customer_id": cid, "currency": "USD", "amount": _money(float(arr) * 0.1),
            "invoice_id": f"INV-{cid}-R"}, "billing.bench"))
    renewal = _add_months(start, term)
    if renewal < end:
        out.append(b.event("subscription.renewed", renewal, {
            "customer_id": cid, "contract_id": f"K-{cid}", "currency": "USD",
            "arr": _money(float(arr) * rng.uniform(0.95, 1.15)),
            "period_start": renewal.isoformat(),
            "period_end": (_add_months(renewal, 12) - timedelta(days=1)).isoformat()},
            "billing.bench"))
    if churn and churn <= WINDOW_END:
        out.append(b.event("subscription.churned", churn, {
            "customer_id": cid, "effective_date": churn.isoformat(),
            "reason": rng.choice(("budget", "competitor", "no adoption"))}, "billing.bench"))
    slots = []
    if rng.random() < 0.6:  # metered customers: a slot per month and metric
        month = _add_months(start.replace(day=1), 1)
        while month < end:
            nxt = _add_months(month, 1)
            for metric in ("api_calls", "seats"):
                slots.append((month, nxt - timedelta(days=1), metric))
            month = nxt
    return out, slots


def _usage(b: _Builder, cid: str, slot: tuple[date, date, str]) -> dict[str, Any]:
    first, last, metric = slot
    qty = b.rng.randrange(100, 100000)
    return b.event("usage.reported", last + timedelta(days=1), {
        "customer_id": cid, "currency": "USD", "metric": metric, "quantity": qty,
        "revenue": _money(qty * b.rng.uniform(0.01, 0.2)), "period_start": first.isoformat(),
        "period_end": last.isoformat()}, "billing.bench")


def _partner_facts(b: _Builder, partners: list[tuple[str, str]]) -> list[dict]:
    rng, out = b.rng, []
    for pid, _ in partners:
        for _ in range(rng.choices((0, 1, 2, 4), (40, 30, 20, 10))[0]):
            d = DEALS_FROM + timedelta(days=rng.randrange(540))
            out.append(b.event("referral.qualified", d, {"partner_id": pid,
                                                         "lead_id": f"L-{b.n}"}, "crm.bench"))
        if rng.random() < 0.3:
            for q in range(6):
                d = _add_months(DEALS_FROM, 3 * q) + timedelta(days=rng.randrange(80))
                out.append(b.event("comarketing.completed", d, {
                    "partner_id": pid, "activity": rng.choice(("webinar", "event", "ads")),
                    "currency": "USD", "spend": _money(rng.uniform(500, 15000))}, "crm.bench"))
        if rng.random() < 0.15:
            d = DEALS_FROM + timedelta(days=rng.randrange(540))
            out.append(b.event("adjustment.posted", d, {
                "partner_id": pid, "currency": "USD", "amount": f"{rng.randrange(-300, 900)}.00",
                "reason": "quarterly true-up", "approved_by": "ops@bench"}, "ops.bench"))
    return out


def generate(seed: int = 42, partners: int = 500, customers: int = 20_000,
             kafka_events: int = 200_000, http_events: int = 50_000,
             http_lanes: int = 8) -> Programme:
    """The programme for a seed. Exactly kafka_events + http_events events (usage fills up)."""
    rng = random.Random(seed)
    b = _Builder(rng)
    partner_list = [(f"P-{i:04d}", rng.choice(PARTNER_TYPES)) for i in range(partners)]
    weights = [1 / (i + 1) ** 0.8 for i in range(partners)]  # a few large partners, a long tail
    http_share = http_events / (kafka_events + http_events)
    lanes: dict[str, list[tuple[str, list[dict], list]]] = {"kafka": [], "http": []}
    for c in range(customers):
        cid = f"C-{c:06d}"
        first = rng.choices(partner_list, weights)[0][0]
        if rng.random() < 0.25:
            second = rng.choice([p for p, _ in partner_list[:50] if p != first])
            a = rng.choice(("0.7", "0.5", "0.8"))
            split = [(first, "sourced", a),
                     (second, rng.choice(("influenced", "implemented")), str(1 - Decimal(a)))]
        else:
            split = [(first, "sourced", "1")]
        events, slots = _customer_facts(b, cid, split)
        lanes["http" if rng.random() < http_share else "kafka"].append((cid, events, slots))
    partner_events = _partner_facts(b, partner_list)
    prog = Programme(seed, plan_document(), partner_list)
    for path, target, extra in (("kafka", kafka_events, partner_events), ("http", http_events, [])):
        chosen = lanes[path]
        have = sum(len(e) for _, e, _ in chosen) + len(extra)
        slots = [(i, s) for i, (_, _, ss) in enumerate(chosen) for s in ss]
        need = target - have
        if need < 0 or need > len(slots):
            raise ValueError(f"{path}: {have} non-usage events and {len(slots)} usage slots "
                             f"cannot make {target}; change the sizes")
        for i, slot in sorted(rng.sample(slots, need), key=lambda t: (t[0], t[1][0], t[1][2])):
            chosen[i][1].append(_usage(b, chosen[i][0], slot))
        if path == "kafka":
            events = [e for _, es, _ in chosen for e in es] + extra
            events.sort(key=lambda e: e["time"])
            prog.kafka = events
        else:
            per_lane: list[list[dict]] = [[] for _ in range(http_lanes)]
            for n, (_, es, _) in enumerate(chosen):
                per_lane[n % http_lanes].extend(es)
            for lane in per_lane:
                lane.sort(key=lambda e: e["time"])
            prog.http_lanes = per_lane
            prog.http = [e for lane in per_lane for e in lane]
    return prog
