"""JSON written by orjson straight from the core's values (adapters.fastjson) is the JSON
of the core's own converters: a ledger entry's byte for byte as entry_to_dict's (the
message the accrual reads and the payload the rebuild folds do not depend on which wrote
them), a partner state's stored parts value for value as state_to_json's."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson

from bench.programme import generate
from tests.unit.test_engine_golden import PLAN_V1, PLAN_V2, _attribute, _extra_events
from trailpay.adapters.fastjson import entry_json
from trailpay.adapters.state_store import book_parts, partner_part
from trailpay.core.accrual import AccrualError, accrue, new_state
from trailpay.core.attribution import entries_for, entry_to_dict, partners_of
from trailpay.core.facts import COMMAND_SOURCE, FACT_TYPES, PlanRerated
from trailpay.core.plans import Enrollment, PlanBook, PlanError, parse_plan
from trailpay.core.state import PartnerState, state_to_json


def test_entry_json_is_entry_to_dict_byte_for_byte_for_every_event_type():
    prog = generate(7, partners=40, customers=800, kafka_events=6_000, http_events=0,
                    http_lanes=1)
    events = sorted(prog.kafka + _extra_events(prog.partners, random.Random(7)),
                    key=lambda e: e["time"])
    entries = _attribute(events)
    rerated = PlanRerated("P-1", "plan-1", 2)  # a command the rich mix does not make
    entries += entries_for(10**9, "plan-rerated:plan-1:2:P-1", COMMAND_SOURCE,
                           datetime(2026, 1, 1, tzinfo=UTC), rerated,
                           partners_of(rerated, None), None, datetime(2026, 3, 1, tzinfo=UTC))
    assert {e.fact.type for e in entries} == set(FACT_TYPES)
    for e in entries:
        assert entry_json(e) == orjson.dumps(entry_to_dict(e)), e.entry_id


def test_state_parts_are_state_to_json_for_the_states_of_a_rich_mix():
    """partner_part and book_parts (fastjson) against the core's state_to_json, on the
    states a fold of every event type leaves (pending lots, payouts, disputes, ...)."""
    prog = generate(7, partners=30, customers=600, kafka_events=5_000, http_events=0,
                    http_lanes=1)
    events = sorted(prog.kafka + _extra_events(prog.partners, random.Random(7)),
                    key=lambda e: e["time"])
    v1, v2 = parse_plan(PLAN_V1), parse_plan(PLAN_V2)
    book = PlanBook([v1, v2])
    types = dict(prog.partners)
    states: dict[str, PartnerState] = {}
    for e in _attribute(events):
        try:
            _, states[e.partner_id] = accrue(
                states.get(e.partner_id) or new_state(e.partner_id), e, book,
                Enrollment(e.partner_id, types[e.partner_id], v1.plan_id, {}))
        except (AccrualError, PlanError):
            continue
    for name in ("customers", "pending", "payable", "comarketing", "payouts", "disputes",
                 "payable_changes"):
        assert any(getattr(s, name) for s in states.values()), name  # the mix covers it
    for s in states.values():
        old = state_to_json(s)
        assert orjson.loads(partner_part(s)) == {**old, "customers": {}, "last_key": None}
        for c, doc in book_parts(s, sorted(s.customers)).items():
            assert doc.encode() == orjson.dumps(old["customers"][c])
