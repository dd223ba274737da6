"""CloudEvents codec: HTTP (structured, binary, batch) and Kafka bytes to validated facts.

Every way an event can arrive ends in the same Envelope, and in the same
canonical `raw` bytes: the journal dedups on the hash of `raw`, so an event
sent once structured over HTTP and once binary on Kafka must hash the same.
Validation runs in a fixed order (JSON, envelope schema, data schema of the
type, then the fact) and a rejection names its culprit as a dotted path such
as "data.partners[0].share" ("[2].data.acv" inside a batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import orjson

from trailpay.core.facts import MONEY_FIELDS, Fact, FactError, fact_from_data
from trailpay.core.frozen import maker

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
MAX_BATCH = 1000

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON = "application/json"

# Attributes that are not extensions; `datacontenttype` is dropped from `raw`
# (data is always JSON here, and binary mode carries it as Content-Type).
_CONTEXT = frozenset({"specversion", "id", "source", "type", "time", "datacontenttype",
                      "subject", "dataschema", "data"})


class EventRejected(Exception):
    """An event (or a whole batch) is refused; `field` names the culprit, `status` the HTTP code."""

    def __init__(self, reason: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime  # tz-aware, as the sender wrote it
    key: str        # Kafka key: customer_id, or partner_id for partner-level facts
    fact: Fact
    raw: bytes      # canonical JSON of the event: what the journal stores and hashes


_make_envelope = maker(Envelope)  # a frozen dataclass's own __init__ was 2% of the ledger

# --- schemas -------------------------------------------------------------------------------

def _compile(path: Path) -> Any:
    return jsonschema_rs.validator_for(orjson.loads(path.read_bytes()), validate_formats=True)


@cache
def _envelope_validator() -> Any:
    return _compile(SCHEMAS / "cloudevent.json")


@cache
def _data_validator(event_type: str) -> Any:
    return _compile(SCHEMAS / "events" / f"{event_type}.json")


def _dotted(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _at(prefix: str, path: str) -> str:
    """Join a batch prefix ("[2]" or "") and a path inside the event."""
    if not path:
        return prefix or "(body)"
    return f"{prefix}.{path}" if prefix else path


# Patterns the schemas share, and what a rejection says when a value misses one of them.
PRINTABLE = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
FREE_TEXT = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]+$"
YEARS = "^(19[0-9]{2}|2[01][0-9]{2}|2200)-"
_PATTERN_SAYS = {
    PRINTABLE: "must be printable: no control characters",
    FREE_TEXT: "must hold no control characters other than tab and line breaks",
    YEARS: "must be a date in the years 1900 to 2200",
}
CURRENCY_FIELDS = frozenset({"currency", "adjustment_currency"})


def _shown(value: Any, limit: int = 40) -> str:
    """A value as a rejection quotes it: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def _first_error(validator: Any, instance: Any, base: list[str | int]) -> tuple[str, str] | None:
    """(dotted path, message) of the first schema error, or None when valid. A message
    quotes the offending value at most shortly: it ends up in problem bodies, logs and
    dead letters."""
    if validator.is_valid(instance):
        return None
    err = next(iter(validator.iter_errors(instance)))
    path: list[str | int] = [*base, *err.instance_path]
    kind, message = err.kind, err.message
    name = path[-1] if path else ""
    if len(message) > 200:
        message = message[:197] + "..."
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        path.append(kind.property)  # name the missing property, not its parent
        message = "is required"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        path.append(kind.unexpected[0])
        message = "is not an allowed property"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.PropertyNames):
        bad = kind.error.instance
        path.append(bad[:64] if isinstance(bad, str) else str(bad))
        message = ("extension attribute names must be lowercase letters and digits, "
                   "at most 64 characters long")
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Type) and _is_number(err.instance):
        if name in MONEY_FIELDS:
            message = 'money must be a decimal string such as "1234.50", never a JSON number'
        elif name == "share":
            message = 'share must be a decimal string such as "0.5", never a JSON number'
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern):
        if name in MONEY_FIELDS:
            message = ('money must be a decimal string such as "1234.50", at most 14 digits '
                       f"before the point and 6 after, got {_shown(err.instance)}")
        elif name == "share":
            message = f"share must be a decimal string with 0 < share <= 1, got {_shown(err.instance)}"
        elif kind.pattern in _PATTERN_SAYS:
            message = f"{_PATTERN_SAYS[kind.pattern]}, got {_shown(err.instance)}"
        else:
            message = f"{_shown(err.instance)} does not match {kind.pattern!r}"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.MaxLength):
        message = f"is longer than {kind.limit} characters ({len(err.instance)})"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        if name in CURRENCY_FIELDS:
            message = f"not an ISO 4217 currency code that trailpay knows: {_shown(err.instance)}"
        else:
            message = (f"{_shown(err.instance)} is not one of "
                       + ", ".join(repr(o) for o in kind.options))
    return _dotted(path), message


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- the one decoding path every mode ends in ------------------------------------------

def _parse_time(text: str) -> datetime:
    # RFC 3339 allows lowercase t/z; Python 3.11 parses up to microseconds.
    return datetime.fromisoformat(text.upper())


def _canonical(event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in event.items():
        if name == "datacontenttype":
            continue
        if name not in _CONTEXT and not isinstance(value, str):
            # Binary modes carry extensions as strings: store them that way in every mode.
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[name] = value
    return out


def _decode_event(event: Any, prefix: str = "") -> Envelope:
    if not isinstance(event, dict):
        raise EventRejected("an event must be a JSON object", prefix or "(body)")
    bad = _first_error(_envelope_validator(), event, [])
    if bad is not None:
        raise EventRejected(bad[1], _at(prefix, bad[0]))
    event_type: str = event["type"]
    data = event["data"]
    bad = _first_error(_data_validator(event_type), data, ["data"])
    if bad is not None:
        raise EventRejected(bad[1], _at(prefix, bad[0]))
    try:
        fact = fact_from_data(event_type, data)
    except FactError as exc:
        f = exc.field
        path = f if f in ("type", "data") or f.startswith("data.") else f"data.{f}"
        raise EventRejected(exc.message, _at(prefix, path)) from None
    try:
        when = _parse_time(event["time"])
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise EventRejected(f"not an RFC 3339 date-time with offset: {event['time']!r}",
                            _at(prefix, "time"))
    return _make_envelope(event["id"], event["source"], event_type, when, fact.key(), fact,
                          orjson.dumps(_canonical(event), option=orjson.OPT_SORT_KEYS))


def _loads(body: bytes, field: str = "(body)") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"not valid JSON: {exc}", field) from None


def _binary(attributes: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A binary-mode event (attributes from headers, body = data) as a structured object."""
    event: dict[str, Any] = dict(attributes)
    if body.strip():
        event["data"] = _loads(body)
    return event


# --- HTTP ----------------------------------------------------------------------------------

def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type in ("", JSON) or media_type.endswith("+json")


def _batch(items: Any) -> list[Envelope]:
    if not isinstance(items, list):
        raise EventRejected("a batch must be a JSON array of events", "(body)")
    if not items:
        raise EventRejected("a batch must hold at least one event", "(body)")
    if len(items) > MAX_BATCH:
        raise EventRejected(f"a batch holds at most {MAX_BATCH} events, got {len(items)}",
                            "(body)", status=413)
    return [_decode_event(item, f"[{i}]") for i, item in enumerate(items)]


def decode_http(body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Envelope]:
    """Decode an HTTP request body in any mode; all-or-nothing for a batch."""
    media = _media_type(content_type)
    if media == BATCH:
        return _batch(_loads(body))
    if media != STRUCTURED:
        attributes = {k.lower()[3:]: unquote(v) for k, v in headers.items()
                      if k.lower().startswith("ce-")}
        if "specversion" in attributes:
            if not _is_json(media):
                raise EventRejected(f"data must be JSON, not {media!r}", "datacontenttype",
                                    status=415)
            return [_decode_event(_binary(attributes, body))]
        if media != JSON:
            raise EventRejected(
                f"unsupported content type {content_type!r}: send {STRUCTURED}, {BATCH}, "
                f"{JSON}, or binary mode (ce-* headers)", "content-type", status=415)
    doc = _loads(body)
    if isinstance(doc, list):
        if media == STRUCTURED:
            raise EventRejected(f"expected one event object; send a JSON array as {BATCH}",
                                "(body)")
        return _batch(doc)
    return [_decode_event(doc)]


# --- Kafka ---------------------------------------------------------------------------------

def decode_kafka(value: bytes, headers: list[tuple[str, bytes]]) -> Envelope:
    """Decode a Kafka record: structured value, or binary mode with ce_* headers."""
    attributes: dict[str, str] = {}
    for name, raw_value in headers:
        name = name.lower()
        if name.startswith("ce_") and raw_value is not None:
            try:
                attributes[name[3:]] = raw_value.decode()
            except UnicodeDecodeError:
                raise EventRejected("header value is not UTF-8", name[3:]) from None
    if "specversion" in attributes:
        return _decode_event(_binary(attributes, value))
    return _decode_event(_loads(value))


def encode_kafka(env: Envelope) -> bytes:
    """The structured-mode Kafka value of an event: its canonical bytes."""
    return env.raw
