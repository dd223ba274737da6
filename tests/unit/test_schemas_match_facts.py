"""schemas/ and trailpay.core.facts stay in step: same types, same fields, same required set."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import jsonschema_rs
import orjson
import pytest

from trailpay.adapters.cloudevents import FREE_TEXT, PRINTABLE, YEARS
from trailpay.core.facts import FACT_TYPES, MONEY_FIELDS
from trailpay.core.money import MINOR_UNITS

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


def _properties(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    out = []
    for name, prop in schema["properties"].items():
        out.append((prefix + name, prop))
        if prop.get("type") == "array":
            out += _properties(prop["items"], f"{prefix}{name}[].")
    return out


def _event_properties() -> list[tuple[str, str, dict]]:
    return [(t, name, prop) for t in sorted(FACT_TYPES)
            for name, prop in _properties(load(SCHEMAS / "events" / f"{t}.json"))]


def test_currencies_are_exactly_the_iso_codes_the_money_module_knows():
    currencies = [(t, n, p) for t, n, p in _event_properties() if n.endswith("currency")]
    assert len(currencies) >= 9
    for event_type, name, prop in currencies:
        assert prop.get("enum") == sorted(MINOR_UNITS), f"{event_type}.{name}"


def test_every_text_field_is_bounded_and_ids_and_codes_are_printable():
    for event_type, name, prop in _event_properties():
        types = prop.get("type")
        if "string" not in (types if isinstance(types, list) else [types]):
            continue
        where = f"{event_type}.{name}"
        if "enum" in prop:
            continue
        if prop.get("format") == "date":
            assert prop["pattern"] == YEARS, where
            continue
        if name.split(".")[-1] in MONEY_FIELDS | {"adjustment_amount", "quantity", "score"}:
            assert re.fullmatch(r"\^(-\?)?\[0-9\]\{1,\d+\}\(\\\.\[0-9\]\{1,6\}\)\?\$",
                                prop["pattern"]), where
            continue
        assert isinstance(prop.get("maxLength"), int), f"{where} has no maxLength"
        if name.endswith("share"):
            continue
        assert prop["pattern"] in (PRINTABLE, FREE_TEXT), where
        if name.endswith(("_id", "_by")) or name in ("metric", "milestone", "activity",
                                                      "reference"):
            assert prop["pattern"] == PRINTABLE, where


def test_envelope_ids_time_and_extensions_are_bounded():
    envelope = load(SCHEMAS / "cloudevent.json")
    props = envelope["properties"]
    for name in ("id", "source", "subject"):
        assert props[name]["maxLength"] <= 256 and props[name]["pattern"] == PRINTABLE, name
    assert props["time"]["pattern"] == YEARS
    extension = envelope["additionalProperties"]
    assert extension["maxLength"] and extension["pattern"] == PRINTABLE
    assert (extension["minimum"], extension["maximum"]) == (-(2**63), 2**63 - 1)
    assert envelope["propertyNames"]["maxLength"] == 64 and envelope["maxProperties"]
