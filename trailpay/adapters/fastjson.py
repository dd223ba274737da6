"""JSON of the core's frozen values, written by orjson straight from them.

orjson writes dataclasses, dates, datetimes, tuples and (with OPT_NON_STR_KEYS) dicts
keyed by dates itself, so only Decimals need a hand (their `str()`). The core's own
converters (`entry_to_dict`, `state_to_json`) first rebuild each value as a dict of
strings; going straight costs half as much or less, for the same JSON (tests compare
them: byte for byte for entries and customer books, value for value for partner parts).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from trailpay.core.journal import LedgerEntry

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def entry_json(e: LedgerEntry) -> bytes:
    """A ledger entry's trailpay.ledger message, outbox payload and dead-letter body
    (2.6 against 5.2 µs for orjson.dumps(entry_to_dict(e)))."""
    return dumps({
        "entry_id": e.entry_id, "journal_seq": e.journal_seq, "event_id": e.event_id,
        "source": e.source, "time": e.time, "partner_id": e.partner_id,
        "customer_id": e.customer_id, "deal_id": e.deal_id, "share": str(e.share),
        "role": e.role, "type": e.fact.type, "data": e.fact, "recorded_at": e.recorded_at,
    })
