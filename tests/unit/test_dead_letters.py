"""Dead letters that cannot fail: whatever a message's bytes, its letter is text PostgreSQL
takes, the bytes are kept as they were, and the event's id is read where it can be."""

from __future__ import annotations

import base64

import orjson
from aiokafka import ConsumerRecord

from trailpay.adapters.dead_letters import (
    LIMITS, DeadLetter, _safe, identify, poison_letter, safe_text,
)


def record(value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
           offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord(topic="trailpay.events", partition=2, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value or b""),
                          headers=headers or [])


def storable(text: str) -> bool:
    """What PostgreSQL's text takes: UTF-8 without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def test_safe_text_escapes_nul_and_surrogates_and_bounds_length():
    assert safe_text("evt\x00id", 100) == "evt\\u0000id"
    assert storable(safe_text("lone \ud800 surrogate", 100))
    assert safe_text("x" * 10_000, 256) == "x" * 255 + "…"
    assert safe_text("\x00" * 1000, 256).startswith("\\u0000") and len(
        safe_text("\x00" * 1000, 256)) == 256
    assert safe_text("plain", 10) == "plain"


def test_identify_reads_structured_binary_and_entry_messages_and_survives_garbage():
    event = {"specversion": "1.0", "id": "e-1", "source": "crm", "type": "deal.opened"}
    assert identify(orjson.dumps(event)) == {"event_id": "e-1", "source": "crm",
                                             "type": "deal.opened"}
    headers = [("ce_id", b"e-2"), ("ce_source", b"erp"), ("ce_type", b"x.y"),
               ("ce_time", b"2026-01-01T00:00:00Z")]
    assert identify(b'{"acv": 1}', headers) == {"event_id": "e-2", "source": "erp", "type": "x.y"}
    entry = {"entry_id": "9:P", "event_id": "e-3", "source": "crm", "type": "deal.closed"}
    assert identify(orjson.dumps(entry))["event_id"] == "e-3"
    assert identify(b"\xff\x00 not json") == {}
    assert identify(b'[1, 2]') == {}
    assert identify(orjson.dumps({"id": 5, "source": ""})) == {}


def test_a_letter_of_an_unknown_type_carries_the_event_id_read_from_its_payload():
    payload = orjson.dumps({"specversion": "1.0", "id": "evt-unknown", "source": "crm",
                            "type": "deal.opened", "data": {}}).decode()
    safe = _safe(DeadLetter(stage="ledger", reason="invalid: not one of ...", field="type",
                            payload=payload))
    assert (safe.event_id, safe.source, safe.type) == ("evt-unknown", "crm", "deal.opened")
    # What the caller knew stays as it was.
    kept = _safe(DeadLetter(stage="ledger", reason="r", payload=payload, event_id="given"))
    assert kept.event_id == "given" and kept.source == "crm"


def test_hostile_letters_become_storable_text_and_keep_their_bytes():
    value = orjson.dumps({"id": "evt\x00" + "x" * 10_000, "source": "crm\x00",
                          "type": "deal.closed"})
    letter = _safe(poison_letter("ledger", record(value), ValueError("bad \x00 value")))
    assert letter.raw == value
    garbage = b"\x00\xff\xfe" + value
    assert _safe(poison_letter("ledger", record(garbage), ValueError("x"))).raw == garbage
    for name, limit in LIMITS.items():
        text = getattr(letter, name)
        if text is not None:
            assert storable(text) and len(text) <= limit, name
    assert letter.event_id.startswith("evt\\u0000x") and len(letter.event_id) == 256
    assert letter.reason == "poison: ValueError: bad \\u0000 value"
    assert (letter.topic, letter.partition, letter.offset) == ("trailpay.events", 2, 7)


def test_poison_letter_of_an_empty_or_binary_mode_record():
    empty = _safe(poison_letter("accrual", record(None), KeyError("entry_id")))
    assert empty.raw == b"" and empty.payload == "" and empty.reason == "poison: KeyError: 'entry_id'"
    binary = poison_letter("ledger", record(b'{"acv": "1"}', [("ce_id", b"evt-b"),
                                                              ("ce_source", b"crm")]),
                           RuntimeError("x"))
    assert (binary.event_id, binary.source) == ("evt-b", "crm")


def test_dlq_message_carries_the_raw_bytes_only_when_the_payload_text_lost_them():
    value = b'{"id": "e"}\xff'
    letter = _safe(poison_letter("ledger", record(value), ValueError("x")))
    message = orjson.loads(letter.to_message())
    assert base64.b64decode(message["raw_base64"]) == value and "raw" not in message
    plain = _safe(DeadLetter(stage="ledger", reason="r", payload='{"id": "e"}'))
    assert "raw_base64" not in orjson.loads(plain.to_message())
