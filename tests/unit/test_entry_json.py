"""The ledger entry's JSON, written by orjson from the frozen values (adapters.entry_json),
is byte for byte the JSON of core.attribution.entry_to_dict: the message the accrual
reads and the payload the rebuild folds do not depend on which one wrote them."""

from __future__ import annotations

import random

import orjson

from bench.programme import generate
from tests.unit.test_engine_golden import _attribute, _extra_events
from trailpay.adapters.entry_json import entry_json
from trailpay.core.attribution import entry_to_dict
from trailpay.core.facts import FACT_TYPES


def test_entry_json_is_entry_to_dict_byte_for_byte_for_every_event_type():
    prog = generate(7, partners=40, customers=800, kafka_events=6_000, http_events=0,
                    http_lanes=1)
    events = sorted(prog.kafka + _extra_events(prog.partners, random.Random(7)),
                    key=lambda e: e["time"])
    entries = _attribute(events)
    assert {e.fact.type for e in entries} == set(FACT_TYPES)
    for e in entries:
        assert entry_json(e) == orjson.dumps(entry_to_dict(e)), e.entry_id
