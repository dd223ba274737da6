"""The partner state's two stored parts put back together are the state; a batch writes
only the customer books it changed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson

from trailpay.adapters.state_store import book_parts, changed_books, partner_part
from trailpay.core.state import CustomerBook, PartnerState, state_from_json, state_to_json


def _state() -> PartnerState:
    s = PartnerState("P1")
    s.put(CustomerBook("C1", "D1", "USD", Decimal("0.6"), date(2026, 1, 1), 12,
                       Decimal("100000.00"), earned=Decimal("12000.00"), held=Decimal("4800.00"),
                       vest_deadline=date(2026, 5, 30), release_on=("onboarding",)))
    s.put(CustomerBook("C2", "D2", "EUR", Decimal("1"), date(2026, 2, 1), 24, Decimal("5000.00")))
    s.pending["USD"] = {date(2026, 2, 1): Decimal("7200.00")}
    s.payable["EUR"] = Decimal("-12.34")
    return s


def test_the_parts_round_trip_to_the_same_state():
    s = _state()
    doc = orjson.loads(partner_part(s))
    assert doc["customers"] == {}
    doc["customers"] = {c: orjson.loads(j) for c, j in book_parts(s, sorted(s.customers)).items()}
    back = state_from_json(doc)
    assert state_to_json(back) == state_to_json(s)
    assert back.vesting_due == {"C1": date(2026, 5, 30)}


def test_only_replaced_books_count_as_changed():
    before = _state()
    after = before.copy()
    assert changed_books(before, after) == []
    after.put(CustomerBook("C3", "D3", "USD", Decimal("1"), date(2026, 3, 1), 12, Decimal("1")))
    old = after.customers["C2"]
    after.put(CustomerBook(**{**{f: getattr(old, f) for f in old.__slots__}, "active": False}))
    assert changed_books(before, after) == ["C2", "C3"]
    assert changed_books(PartnerState("P1"), after) == ["C1", "C2", "C3"]  # a new partner
