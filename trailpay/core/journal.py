"""Journal entries and the hash chain that makes tampering detectable.

The writer and `trailpay audit verify` call the same `chain_hash`, so the two
can never disagree about what a valid chain is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trailpay.core.facts import Fact

GENESIS = "0" * 64


def body_hash(canonical_body: bytes) -> str:
    """Hash of an event's canonical JSON: same hash, same event."""
    return hashlib.sha256(canonical_body).hexdigest()


def chain_hash(prev_hash: str, stream: str, stream_pos: int, event_hash: str) -> str:
    """The row hash: links a journal row to the previous row of its stream."""
    h = hashlib.sha256()
    h.update(f"{prev_hash}|{stream}|{stream_pos}|{event_hash}".encode())
    return h.hexdigest()


def verify_chain(rows: list[tuple[int, str, str, str]], stream: str) -> int | None:
    """rows: (stream_pos, event_hash, prev_hash, row_hash) in stream order.

    Returns the stream position of the first broken row, or None if intact.
    """
    prev = GENESIS
    expected_pos = 1
    for pos, event_hash, prev_hash, row_hash in rows:
        if pos != expected_pos or prev_hash != prev:
            return pos
        if chain_hash(prev, stream, pos, event_hash) != row_hash:
            return pos
        prev = row_hash
        expected_pos += 1
    return None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A journaled fact attributed to one partner: what the accrual service folds.

    entry_id is f"{journal_seq}:{partner_id}"; it keys accrual idempotency.
    `share` is the partner's share of a customer fact (1 for partner facts).
    """

    entry_id: str
    journal_seq: int
    event_id: str
    source: str
    time: datetime
    partner_id: str
    customer_id: str | None
    deal_id: str | None
    share: Decimal
    role: str | None
    fact: Fact
    # When trailpay recorded (attributed) the entry: not the fact's own time. Postings made
    # because an entry arrived late are dated here, so past statements stay as issued.
    recorded_at: datetime | None = None


SortKey = tuple[datetime, str, str]


def sort_key(e: LedgerEntry) -> SortKey:
    """The order that defines a partner's money (design §4): event time, source, event id.

    One event makes at most one entry per partner, so the key is unique within a partner."""
    return (e.time, e.source, e.event_id)
