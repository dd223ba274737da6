"""schemas/ and trailpay.core.facts stay in step: same types, same fields, same required set."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import jsonschema_rs
import orjson
import pytest

from trailpay.core.facts import FACT_TYPES, MONEY_FIELDS

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def load(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


@pytest.mark.parametrize("event_type", sorted(FACT_TYPES))
def test_schema_properties_and_required_match_the_dataclass(event_type):
    path = SCHEMAS / "events" / f"{event_type}.json"
    assert path.is_file(), f"no schema for {event_type}"
    schema = load(path)
    cls = FACT_TYPES[event_type]
    names = [f.name for f in fields(cls)]
    required = [f.name for f in fields(cls)
                if f.default is MISSING and f.default_factory is MISSING]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema.get("description")
    assert set(schema["properties"]) == set(names)
    assert sorted(schema["required"]) == sorted(required)
    for name in set(names) & MONEY_FIELDS:
        prop = schema["properties"][name]
        assert prop["type"] == "string", f"{event_type}.{name} must be a decimal string"
        assert "decimal string" in prop["description"]
    jsonschema_rs.meta.validate(schema)


def test_no_schema_for_an_unknown_type():
    on_disk = {p.name.removesuffix(".json") for p in (SCHEMAS / "events").glob("*.json")}
    assert on_disk == set(FACT_TYPES)


def test_envelope_type_enum_lists_exactly_the_fact_types():
    envelope = load(SCHEMAS / "cloudevent.json")
    assert set(envelope["properties"]["type"]["enum"]) == set(FACT_TYPES)
    assert set(envelope["required"]) == {"specversion", "id", "source", "type", "time", "data"}
    jsonschema_rs.meta.validate(envelope)


def test_money_is_signed_only_for_adjustments():
    for event_type in FACT_TYPES:
        props = load(SCHEMAS / "events" / f"{event_type}.json")["properties"]
        for name in set(props) & MONEY_FIELDS:
            signed = props[name]["pattern"].startswith("^-?")
            assert signed == (event_type == "adjustment.posted"), f"{event_type}.{name}"
