"""Builders for tests of the pure core: plans, entries and a fold that keeps balances."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from trailpay.core.accrual import AccrualError, accrue, new_state
from trailpay.core.timeline import Timeline
from trailpay.core.attribution import customer_after, entries_for, partners_of
from trailpay.core.facts import Fact, fact_from_data
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Enrollment, PlanBook, PlanVersion, parse_plan
from trailpay.core.postings import COMPANY_ACCOUNT, PostingGroup
from trailpay.core.state import PartnerState
from trailpay.core.statements import balances_as_of


def plan(rules: list[dict[str, Any]], *, version: int = 1, effective_from: str = "2026-01-01",
         currency: str = "USD", hold_days: int = 30, clawback: dict | None = None,
         partner_types: list[str] | None = None, minimum: Any = "100.00") -> PlanVersion:
    return parse_plan({
        "plan_id": "p", "version": version, "effective_from": effective_from, "currency": currency,
        "partner_types": partner_types or [], "rules": rules,
        "clawback": clawback or {"window_days": 180, "mode": "full"},
        "payout": {"minimum": minimum, "hold_days": hold_days, "cadence": "monthly"}})


def fact(type_: str, **data: Any) -> Fact:
    return fact_from_data(type_, data)


def deal(customer: str = "C1", acv: str = "100000.00", tcv: str | None = None, kind: str = "new",
         start: str = "2026-01-01", term: int = 12, currency: str = "USD",
         partners: Iterable[tuple[str, str]] = (("P1", "1"),), deal_id: str = "D1") -> Fact:
    return fact("deal.closed", deal_id=deal_id, customer_id=customer, kind=kind,
                currency=currency, acv=acv, tcv=tcv or acv, term_months=term, start_date=start,
                partners=[{"partner_id": p, "role": "sourced", "share": s} for p, s in partners])


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC) if "T" in day else \
        datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)


@dataclass
class Ledger:
    """Folds facts for partners through `accrue`, the way the accrual service does."""

    plans: list[PlanVersion]
    types: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, dict] = field(default_factory=dict)
    states: dict[str, PartnerState] = field(default_factory=dict)
    groups: list[PostingGroup] = field(default_factory=list)
    timelines: dict[str, Timeline] = field(default_factory=dict)
    seq: int = 0

    def apply(self, f: Fact, day: str, partner: str = "P1", share: str = "1") -> list[PostingGroup]:
        self.seq += 1
        customer = getattr(f, "customer_id", None) if not f.partner_level else None
        e = LedgerEntry(f"{self.seq}:{partner}", self.seq, f"e{self.seq}", "test", at(day),
                        partner, customer, getattr(f, "deal_id", None), Decimal(share), None, f)
        enrollment = Enrollment(partner, self.types.get(partner, "reseller"), "p",
                                self.overrides.get(partner, {}))
        groups, self.states[partner] = accrue(self.states.get(partner) or new_state(partner), e,
                                              PlanBook(self.plans), enrollment)
        self.groups.extend(groups)
        return groups

    def arrive(self, f: Fact, day: str, partner: str = "P1", share: str = "1",
               recorded: str | None = None) -> list[PostingGroup]:
        """Deliver a fact to the partner's timeline, as the accrual service does: in the order
        of the calls, recorded on `recorded` (default: its own day); a late one folds in."""
        self.seq += 1
        customer = getattr(f, "customer_id", None) if not f.partner_level else None
        e = LedgerEntry(f"{self.seq}:{partner}", self.seq, f"e{self.seq}", "test", at(day),
                        partner, customer, getattr(f, "deal_id", None), Decimal(share), None, f,
                        at(recorded or day))
        enrollment = Enrollment(partner, self.types.get(partner, "reseller"), "p",
                                self.overrides.get(partner, {}))
        book = PlanBook(self.plans)
        t = self.timelines.setdefault(partner, Timeline(partner))
        arrival = t.arrive([e], lambda _, seen=0: (book, enrollment))
        self.states[partner] = t.state
        if arrival.refused:
            raise AccrualError(arrival.refused[0][1])
        self.groups.extend(arrival.groups)
        return arrival.groups

    def balances(self, partner: str = "P1", as_of: str = "2099-01-01",
                 currency: str = "USD") -> dict[str, Decimal]:
        rows = [(leg.amount.currency, leg.bucket, leg.available_on, leg.amount.amount)
                for g in self.groups if g.partner_id == partner and g.effective_at <= at(as_of)
                for leg in g.legs if leg.account != COMPANY_ACCOUNT]
        got = balances_as_of(rows, date.fromisoformat(as_of[:10])).get(currency, {})
        return {b: a for b, a in got.items() if a}


def fold_script(book: PlanBook, enrollments: dict[str, Enrollment],
                events: Iterable[tuple[datetime, str, dict[str, Any]]]
                ) -> tuple[dict[str, list[tuple]], dict[str, PartnerState]]:
    """Events (effective time, CloudEvents type, data), in journal order, attributed and
    folded through the core with no I/O: each enrolled partner's legs, as (effective day,
    currency, bucket, available_on, amount), and the final states. What the live services
    must come to for the same events in the same order."""
    customers: dict = {}
    states: dict[str, PartnerState] = {}
    rows: dict[str, list[tuple]] = {p: [] for p in enrollments}
    for seq, (at, type_, data) in enumerate(events, start=1):
        f = fact_from_data(type_, data)
        cust = None if f.partner_level else customers.get(f.customer_id)
        for e in entries_for(seq, f"e{seq}", "crm", at, f, partners_of(f, cust),
                             cust.deal_id if cust else None):
            groups, states[e.partner_id] = accrue(
                states.get(e.partner_id) or new_state(e.partner_id), e, book,
                enrollments[e.partner_id])
            rows[e.partner_id] += [(at.date(), leg.amount.currency, leg.bucket,
                                    leg.available_on, leg.amount.amount)
                                   for g in groups for leg in g.legs if leg.account != COMPANY_ACCOUNT]
        if not f.partner_level:
            after = customer_after(f, cust)
            if after is not None:
                customers[f.customer_id] = after
    return rows, states


def usd_as_of(legs: list[tuple], day: date) -> dict[str, Decimal]:
    """USD balances from fold_script's legs effective by `day`, read by the core's rule."""
    return balances_as_of([leg[1:] for leg in legs if leg[0] <= day], day).get("USD", {})


def billion_laughs(levels: int) -> str:
    """The billion-laughs YAML document: each level is nine aliases of the one before, so
    a few hundred bytes expand to 9^(levels + 1) strings."""
    doc, previous = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n', "l0"
    for i in range(1, levels + 1):
        doc += f"l{i}: &l{i} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = f"l{i}"
    return doc
