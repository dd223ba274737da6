"""The CloudEvents codec: every mode gives the same Envelope and raw bytes; rejections name the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from trailpay.adapters.cloudevents import (
    MAX_BATCH, Envelope, EventRejected, decode_http, decode_kafka, encode_kafka,
)
from trailpay.core.facts import DealClosed, ReferralQualified

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def deal_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0", "id": "evt-1", "source": "crm.test", "type": "deal.closed",
        "time": "2026-02-01T10:00:00Z", "datacontenttype": "application/json",
        "data": {"deal_id": "D-1", "customer_id": "C-1", "kind": "new", "currency": "USD",
                 "acv": "100000.00", "tcv": "200000.00", "term_months": 24,
                 "start_date": "2026-02-01",
                 "partners": [{"partner_id": "P-1", "role": "sourced", "share": "0.6"},
                              {"partner_id": "P-2", "role": "influenced", "share": "0.4"}]},
    }
    event.update(overrides)
    return event


def referral_event(id_: str = "evt-r") -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_, "source": "prm.test", "type": "referral.qualified",
            "time": "2026-03-01T08:30:00+01:00",
            "data": {"partner_id": "P-9", "lead_id": "L-1"}}


def binary_headers(event: dict[str, Any]) -> dict[str, str]:
    return {f"ce-{k}": str(v) for k, v in event.items() if k not in ("data", "datacontenttype")}


def rejected(call: Callable[[], object]) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        call()
    return info.value


# --- accepted ----------------------------------------------------------------------------

def test_structured_event_becomes_a_fact_keyed_by_customer():
    [env] = decode_http(orjson.dumps(deal_event()), STRUCTURED, {})
    assert (env.id, env.source, env.type) == ("evt-1", "crm.test", "deal.closed")
    assert env.time == datetime(2026, 2, 1, 10, tzinfo=UTC) and env.time.tzinfo is not None
    assert isinstance(env.fact, DealClosed)
    assert env.fact.acv == Decimal("100000.00") and env.fact.term_months == 24
    assert [p.share for p in env.fact.partners] == [Decimal("0.6"), Decimal("0.4")]
    assert env.key == "C-1"


def test_partner_level_fact_is_keyed_by_partner():
    [env] = decode_http(orjson.dumps(referral_event()), STRUCTURED, {})
    assert isinstance(env.fact, ReferralQualified)
    assert env.key == "P-9"
    assert env.time.utcoffset() is not None and env.time.hour == 8


def test_raw_is_canonical_sorted_without_datacontenttype_and_keeps_time_as_written():
    event = deal_event(time="2026-02-01T11:00:00.500+01:00")
    [env] = decode_http(orjson.dumps(event), "application/cloudevents+json; charset=utf-8", {})
    body = orjson.loads(env.raw)
    assert "datacontenttype" not in body
    assert body["time"] == "2026-02-01T11:00:00.500+01:00"
    assert env.raw == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    assert encode_kafka(env) == env.raw


def test_every_mode_yields_the_same_raw_bytes():
    event = deal_event(subject="deal/D-1", tenant="acme")
    # Key order and whitespace differ from what the codec writes.
    pretty = orjson.dumps(dict(reversed(list(event.items()))), option=orjson.OPT_INDENT_2)
    data = orjson.dumps(event["data"])
    kafka_headers = [(k.replace("ce-", "ce_"), v.encode())
                     for k, v in binary_headers(event).items()]
    envs = [
        decode_http(pretty, STRUCTURED, {})[0],
        decode_http(pretty, "application/json", {})[0],
        decode_http(data, "application/json", binary_headers(event))[0],
        decode_http(orjson.dumps([event]), BATCH, {})[0],
        decode_http(orjson.dumps([event]), "application/json", {})[0],
        decode_kafka(pretty, []),
        decode_kafka(data, [*kafka_headers, ("content-type", b"application/json")]),
    ]
    assert len({e.raw for e in envs}) == 1
    assert all(e == envs[0] for e in envs)
    assert orjson.loads(envs[0].raw)["tenant"] == "acme"


def test_structured_extension_values_are_stored_as_binary_mode_would_carry_them():
    structured = decode_http(orjson.dumps(deal_event(retries=3, urgent=True)), STRUCTURED, {})[0]
    headers = {**binary_headers(deal_event()), "ce-retries": "3", "ce-urgent": "true"}
    binary = decode_http(orjson.dumps(deal_event()["data"]), "application/json", headers)[0]
    assert structured.raw == binary.raw


def test_binary_mode_header_values_are_percent_decoded():
    event = deal_event(source="crm/é")
    headers = {**binary_headers(event), "ce-source": "crm/%C3%A9"}
    [env] = decode_http(orjson.dumps(event["data"]), "application/json", headers)
    assert env.source == "crm/é"
    assert env.raw == decode_http(orjson.dumps(event), STRUCTURED, {})[0].raw


def test_decode_kafka_of_raw_round_trips():
    for event in (deal_event(), referral_event(), deal_event(subject="s", traceparent="00-ab")):
        [env] = decode_http(orjson.dumps(event), STRUCTURED, {})
        again = decode_kafka(env.raw, [])
        assert again == env
        assert isinstance(again, Envelope) and again.raw == env.raw


def test_batch_keeps_order_and_mixes_types():
    events = [deal_event(id=f"evt-{i}") for i in range(3)] + [referral_event()]
    envs = decode_http(orjson.dumps(events), BATCH, {})
    assert [e.id for e in envs] == ["evt-0", "evt-1", "evt-2", "evt-r"]
    assert [e.key for e in envs] == ["C-1", "C-1", "C-1", "P-9"]


def test_batch_of_exactly_the_maximum_is_accepted():
    events = [referral_event(f"r{i}") for i in range(MAX_BATCH)]
    assert len(decode_http(orjson.dumps(events), BATCH, {})) == MAX_BATCH


def test_optional_fields_and_integer_quantities():
    milestone = {"specversion": "1.0", "id": "m", "source": "cs", "type": "milestone.achieved",
                 "time": "2026-03-01T00:00:00Z",
                 "data": {"customer_id": "C-1", "milestone": "csat_scored", "score": 9}}
    [env] = decode_http(orjson.dumps(milestone), STRUCTURED, {})
    assert env.fact.score == Decimal(9)
    payout = {"specversion": "1.0", "id": "p", "source": "erp", "type": "payout.confirmed",
              "time": "2026-03-01T00:00:00Z", "data": {"payout_id": "PO-1", "reference": "R"}}
    assert decode_kafka(orjson.dumps(payout), []).fact.partner_id == ""
    adjustment = {"specversion": "1.0", "id": "a", "source": "ops", "type": "adjustment.posted",
                  "time": "2026-03-01T00:00:00Z",
                  "data": {"partner_id": "P-1", "currency": "USD", "amount": "-50.00",
                           "reason": "dup", "approved_by": "ops"}}
    assert decode_kafka(orjson.dumps(adjustment), []).fact.amount == Decimal("-50.00")


# --- rejected: the field names the culprit -------------------------------------------------

def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = event
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value
    return mutate


def _pop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = event
        for p in parents:
            target = target[p]
        del target[last]
    return mutate


@pytest.mark.parametrize(("mutate", "field", "says"), [
    (_set("data.acv", 1000.5), "data.acv", "decimal string"),
    (_set("data.acv", 1000), "data.acv", "decimal string"),
    (_set("data.tcv", "-1.00"), "data.tcv", "decimal string"),
    (_pop("data.customer_id"), "data.customer_id", "required"),
    (_pop("id"), "id", "required"),
    (_set("id", ""), "id", ""),
    (_pop("time"), "time", "required"),
    (_set("time", "2026-02-01T10:00:00"), "time", "date-time"),
    (_set("time", "2026-02-01T23:59:60Z"), "time", "RFC 3339"),
    (_set("specversion", "0.3"), "specversion", ""),
    (_set("dataschema", "not a uri"), "dataschema", "uri"),
    (_set("data.start_date", "01/02/2026"), "data.start_date", "date"),
    (_set("type", "deal.opened"), "type", ""),
    (_set("data.kind", "upsell"), "data.kind", ""),
    (_set("data.currency", "usd"), "data.currency", ""),
    (_set("data.term_months", 0), "data.term_months", ""),
    (_set("data.term_months", 12.0), "data.term_months", "integer"),
    (_set("data.partners", []), "data.partners", ""),
    (_set("data.partners.0.share", "0.5"), "data.partners", "sum to 1"),
    (_set("data.partners.1.share", "1.5"), "data.partners[1].share", "0 < share <= 1"),
    (_set("data.partners.1.share", 0.4), "data.partners[1].share", "decimal string"),
    (_set("data.partners.0.role", "resold"), "data.partners[0].role", ""),
    (_set("data.partners.1.partner_id", "P-1"), "data.partners[1].partner_id", "named twice"),
    (_set("data.surprise", "x"), "data.surprise", "not an allowed property"),
    (_set("Bad_Name", "x"), "Bad_Name", "lowercase"),
    (_set("data", "not an object"), "data", ""),
])
def test_bad_event_names_the_field(mutate, field, says):
    event = deal_event()
    mutate(event)
    exc = rejected(lambda: decode_http(orjson.dumps(event), STRUCTURED, {}))
    assert exc.field == field, exc
    assert says in exc.reason
    assert exc.status == 400
    # Kafka rejects the same way.
    assert rejected(lambda: decode_kafka(orjson.dumps(event), [])).field == field


def test_missing_partner_role_names_the_missing_property():
    event = deal_event()
    del event["data"]["partners"][0]["role"]
    assert rejected(lambda: decode_http(orjson.dumps(event), STRUCTURED, {})).field == \
        "data.partners[0].role"


def test_bad_json_names_the_body():
    assert rejected(lambda: decode_http(b'{"id": ', STRUCTURED, {})).field == "(body)"
    assert rejected(lambda: decode_kafka(b"\xff\xfe", [])).field == "(body)"
    assert rejected(lambda: decode_http(b"[1, 2]", STRUCTURED, {})).field == "(body)"
    assert rejected(lambda: decode_http(b'"text"', STRUCTURED, {})).field == "(body)"


def test_binary_mode_rejections():
    headers = binary_headers(deal_event())
    data = deal_event()["data"]
    exc = rejected(lambda: decode_http(orjson.dumps({**data, "acv": 5}), "application/json",
                                       headers))
    assert exc.field == "data.acv"
    exc = rejected(lambda: decode_http(b"", "application/json", headers))
    assert exc.field == "data"
    missing_id = {k: v for k, v in headers.items() if k != "ce-id"}
    assert rejected(lambda: decode_http(orjson.dumps(data), "application/json",
                                        missing_id)).field == "id"
    exc = rejected(lambda: decode_http(b"<xml/>", "application/xml", headers))
    assert exc.status == 415
    kafka = [(k.replace("ce-", "ce_"), v.encode()) for k, v in missing_id.items()]
    assert rejected(lambda: decode_kafka(orjson.dumps(data), kafka)).field == "id"


def test_wrong_content_type_is_415():
    exc = rejected(lambda: decode_http(orjson.dumps(deal_event()), "text/plain", {}))
    assert exc.status == 415
    assert rejected(lambda: decode_http(orjson.dumps(deal_event()), "", {})).status == 415


def test_empty_batch_is_400_and_oversize_batch_is_413():
    exc = rejected(lambda: decode_http(b"[]", BATCH, {}))
    assert (exc.status, exc.field) == (400, "(body)")
    assert MAX_BATCH == 1000
    events = [referral_event(f"r{i}") for i in range(1001)]
    exc = rejected(lambda: decode_http(orjson.dumps(events), BATCH, {}))
    assert exc.status == 413
    assert rejected(lambda: decode_http(orjson.dumps(deal_event()), BATCH, {})).status == 400


def test_batch_is_all_or_nothing_and_names_the_index():
    events = [deal_event(id=f"evt-{i}") for i in range(4)]
    events[2]["data"]["acv"] = 12.5
    exc = rejected(lambda: decode_http(orjson.dumps(events), BATCH, {}))
    assert exc.field == "[2].data.acv" and "decimal string" in exc.reason
    del events[2]["data"]["acv"]
    events[3]["data"].pop("customer_id")
    assert rejected(lambda: decode_http(orjson.dumps(events), BATCH, {})).field == "[2].data.acv"
    events[2] = "not an event"
    assert rejected(lambda: decode_http(orjson.dumps(events), "application/json",
                                        {})).field == "[2]"


# --- validation at the door: what reaches the journal can be stored and computed -----------

def _both(event: dict[str, Any] | bytes) -> list[EventRejected]:
    """The rejection over HTTP and over Kafka: the same checks apply to both."""
    body = event if isinstance(event, bytes) else orjson.dumps(event)
    return [rejected(lambda: decode_http(body, STRUCTURED, {})),
            rejected(lambda: decode_kafka(body, []))]


@pytest.mark.parametrize(("mutate", "field", "says"), [
    (_set("id", "evt\x00nul"), "id", "no control characters"),
    (_set("id", "evt\x1b[31m"), "id", "no control characters"),
    (_set("id", "x" * 10_000), "id", "longer than 256 characters"),
    (_set("source", "crm\x00"), "source", "no control characters"),
    (_set("subject", "s" * 257), "subject", "longer than 256"),
    (_set("data.customer_id", "C\x00"), "data.customer_id", "no control characters"),
    (_set("data.deal_id", "D" * 129), "data.deal_id", "longer than 128"),
    (_set("data.partners.0.partner_id", "P\x85"), "data.partners[0].partner_id", "control"),
    (_set("data.acv", "9" * 400), "data.acv", "at most 14 digits before the point"),
    (_set("data.acv", "123456789012345.00"), "data.acv", "at most 14 digits"),
    (_set("data.tcv", "1.1234567"), "data.tcv", "6 after"),
    (_set("data.partners.0.share", "0." + "1" * 40), "data.partners[0].share", "longer than 14"),
    (_set("data.currency", "XYZ"), "data.currency", "ISO 4217"),
    (_set("data.start_date", "0077-01-01"), "data.start_date", "years 1900 to 2200"),
    (_set("data.start_date", "2201-01-01"), "data.start_date", "years 1900 to 2200"),
    (_set("time", "0077-01-01T00:00:00Z"), "time", "years 1900 to 2200"),
    (_set("data.term_months", 10**6), "data.term_months", "maximum"),
    (_set("comment", "line\nbreak"), "comment", "no control characters"),
    (_set("comment", "c" * 1025), "comment", "longer than 1024"),
    (_set("a" * 65, "x"), "a" * 64, "at most 64 characters"),
])
def test_ids_codes_amounts_and_dates_are_bounded_at_the_door(mutate, field, says):
    event = deal_event()
    mutate(event)
    for exc in _both(event):
        assert (exc.field, exc.status) == (field, 400), exc
        assert says in exc.reason, exc.reason
        # The rejection quotes the value at most briefly: it goes to problem bodies, logs
        # and dead letters.
        assert len(exc.reason) < 200 and "\x00" not in exc.reason


@pytest.mark.parametrize(("path", "at_limit", "over"), [
    ("id", "e" * 256, "e" * 257),
    ("source", "s" * 256, "s" * 257),
    ("data.deal_id", "D" * 128, "D" * 129),
    ("data.acv", "99999999999999.999999", "999999999999999.99"),
    ("data.tcv", "0.123456", "0.1234567"),
    ("data.start_date", "1900-01-01", "1899-12-31"),
    ("data.start_date", "2200-12-31", "2201-01-01"),
    ("time", "2200-12-31T23:59:59Z", "2201-01-01T00:00:00Z"),
    ("data.term_months", 1200, 1201),
    ("data.currency", "JPY", "XYZ"),
])
def test_each_bound_is_exact(path, at_limit, over):
    event = deal_event()
    _set(path, at_limit)(event)
    [env] = decode_http(orjson.dumps(event), STRUCTURED, {})
    assert decode_kafka(env.raw, []).raw == env.raw
    _set(path, over)(event)
    assert {e.field.replace("[0]", ".0") for e in _both(event)} == {path}


def test_free_text_keeps_tabs_and_line_breaks_but_no_other_control_characters():
    churn = {"specversion": "1.0", "id": "ch", "source": "crm", "type": "subscription.churned",
             "time": "2026-03-01T00:00:00Z",
             "data": {"customer_id": "C-1", "effective_date": "2026-03-01",
                      "reason": "budget cut\n\tand a new CFO"}}
    assert decode_kafka(orjson.dumps(churn), []).fact.reason.startswith("budget")
    churn["data"]["reason"] = "budget\x00cut"
    assert {(e.field, "control characters" in e.reason) for e in _both(churn)} == {
        ("data.reason", True)}
    churn["data"]["reason"] = "r" * 2001
    assert {e.field for e in _both(churn)} == {"data.reason"}


def test_numbers_out_of_range_are_refused_anywhere_never_stored_as_something_else():
    good = orjson.dumps(deal_event())
    # An integer extension beyond 64 bits (JSON parsers make it a lossy float).
    ext = good.replace(b'"specversion"', b'"seq":100000000000000000000000000000,"specversion"')
    assert {e.field for e in _both(ext)} == {"seq"}
    for text in (b'"NaN"', b'"Infinity"', b'"1e400"', b'"1E+2"'):  # money is digits only
        as_money = good.replace(b'"acv":"100000.00"', b'"acv":' + text)
        assert {(e.field, "decimal string" in e.reason) for e in _both(as_money)} == {
            ("data.acv", True)}, text
    for text in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        as_extension = good.replace(b'"specversion"', b'"seq":' + text + b',"specversion"')
        assert {e.field for e in _both(as_extension)} == {"(body)"}, text
        as_term = good.replace(b'"term_months":24', b'"term_months":' + text)
        assert {e.field for e in _both(as_term)} == {"(body)"}, text


def test_a_batch_names_the_index_of_the_unbounded_event():
    events = [deal_event(id=f"evt-{i}") for i in range(3)]
    events[1]["id"] = "evt\x00"
    exc = rejected(lambda: decode_http(orjson.dumps(events), BATCH, {}))
    assert exc.field == "[1].id" and "control characters" in exc.reason
