"""Partners' accrual state in PostgreSQL, with the accrual process's own copy in memory.

Stored in two parts: the partner-level part (pending and payable money, payouts,
disputes, ...) in partner_state.state, and one row per customer book in
partner_customer_state. A batch writes the books it changed, not the partner's
whole history: books are immutable values, so a changed book is a new object.

The memory copy saves reading and parsing every touched partner at every batch.
It is trusted only while partner_state.entries (the count of entries applied, which
every writer raises in the same transaction as its postings) still equals the count
the copy was made at, checked under the partner's row lock; a rebalance that let
another process apply entries makes the counts differ, and the state is read again.
The copy is updated only after the transaction commits.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trailpay.adapters.fastjson import dumps
from trailpay.adapters.rebuild_worker import arrivals
from trailpay.core.fold import Books
from trailpay.core.journal import SortKey
from trailpay.core.state import PartnerState, state_from_json
from trailpay.core.timeline import Timeline


@dataclass(slots=True)
class Loaded:
    """A partner's timeline as at the start of a batch, its state then and its entries
    count then (the timeline itself moves on as the batch's entries arrive)."""

    entries: int
    timeline: Timeline
    state: PartnerState


def partner_part(state: PartnerState, last: SortKey | None = None) -> str:
    """The partner-level JSON (everything but the customer books): state_to_json's partner
    part, written by orjson from the containers themselves (fastjson), and the sort key of
    the last entry applied (a later entry that sorts before it is late: timeline.py)."""
    return dumps({
        "partner_id": state.partner_id, "customers": {}, "pending": state.pending,
        "payable": state.payable, "comarketing": state.comarketing, "payouts": state.payouts,
        "last_run": state.last_run, "disputes": state.disputes,
        "payable_changes": state.payable_changes, "last_key": last,
    }).decode()


def _key(doc: Any) -> SortKey | None:
    if not doc:
        return None
    return (datetime.fromisoformat(doc[0]), doc[1], doc[2])


def book_parts(state: PartnerState, customer_ids: list[str]) -> dict[str, str]:
    """The JSON of the given customers' books, keyed by customer id."""
    books = state.customers
    return {c: dumps(books[c]).decode() for c in customer_ids}


def changed_books(before: PartnerState, after: PartnerState) -> list[str]:
    old = before.customers
    return sorted(c for c, b in after.customers.items() if old.get(c) is not b)


class StateStore:
    """Load and save partner timelines for a batch; keeps up to `capacity` in memory."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._memory: OrderedDict[str, Loaded] = OrderedDict()

    async def load(self, pg: Any, partner_ids: list[str]) -> dict[str, Loaded]:
        """Lock the partners' rows (FOR UPDATE) and return their states as of now."""
        rows = await pg.fetch(
            "SELECT partner_id, entries FROM partner_state WHERE partner_id = ANY($1::text[]) "
            "ORDER BY partner_id FOR UPDATE", partner_ids)
        counts = {r[0]: r[1] for r in rows}
        out: dict[str, Loaded] = {}
        stale: list[str] = []
        for pid in partner_ids:
            kept = self._memory.get(pid)
            if pid not in counts:
                t = Timeline(pid)
                out[pid] = Loaded(0, t, t.state)
            elif kept is not None and kept.entries == counts[pid]:
                out[pid] = Loaded(kept.entries, kept.timeline, kept.timeline.state)
            else:
                stale.append(pid)
        if stale:
            parts = await pg.fetch(
                "SELECT partner_id, entries, state::text FROM partner_state "
                "WHERE partner_id = ANY($1::text[])", stale)
            books: dict[str, dict[str, Any]] = defaultdict(dict)
            for r in await pg.fetch(
                    "SELECT partner_id, customer_id, book::text FROM partner_customer_state "
                    "WHERE partner_id = ANY($1::text[])", stale):
                books[r[0]][r[1]] = orjson.loads(r[2])
            for pid, entries, text in parts:
                doc = orjson.loads(text)
                doc["customers"] = books.get(pid, {})
                state = state_from_json(doc)
                out[pid] = Loaded(entries, Timeline(pid, state, _key(doc.get("last_key"))), state)
        return out

    async def read_history(self, pg: Any, loaded: dict[str, Loaded], partner_ids: list[str],
                           books: Books, skip: set[str]) -> None:
        """Replace resumed timelines by whole ones, replayed from every entry applied to the
        partners (but the `skip`ped ones, this batch's own) in the order they were applied:
        a late entry sorts before what they hold in memory. Slow (one read of the partners'
        entries), and only after a restart or an eviction."""
        rows = await pg.fetch(
            "SELECT e.payload, a.arrival FROM ledger_entries e "
            "JOIN accrual_applied a ON a.entry_id = e.entry_id "
            "WHERE e.partner_id = ANY($1::text[]) AND NOT e.entry_id = ANY($2::text[]) "
            "ORDER BY a.applied_order", partner_ids, list(skip))
        groups: dict[str, list[list[Any]]] = defaultdict(list)
        for group in arrivals((r[0], r[1]) for r in rows):
            groups[group[0].partner_id].append(group)
        for pid in partner_ids:
            x = loaded[pid]
            t = Timeline.replayed(pid, groups[pid], books)
            loaded[pid] = Loaded(x.entries, t, t.state)

    def forget(self, partner_ids: list[str]) -> None:
        """Drop memory copies a failed batch may have moved on (its transaction rolled back)."""
        for pid in partner_ids:
            self._memory.pop(pid, None)

    async def save(self, pg: Any, loaded: dict[str, Loaded], after: dict[str, int]) -> None:
        """Write the partners' new states (after: partner -> entries applied in the batch)."""
        if not after:
            return
        ids = sorted(after)
        await pg.execute(
            "INSERT INTO partner_state AS s (partner_id, state, entries) "
            "SELECT p, st, n FROM unnest($1::text[], $2::json[], $3::bigint[]) AS u(p, st, n) "
            "ON CONFLICT (partner_id) DO UPDATE SET state = EXCLUDED.state, "
            "entries = s.entries + EXCLUDED.entries, updated_at = now()",
            ids, [partner_part(loaded[p].timeline.state, loaded[p].timeline.last) for p in ids],
            [after[p] for p in ids])
        pids: list[str] = []
        cids: list[str] = []
        docs: list[str] = []
        for p in ids:
            now = loaded[p].timeline.state
            for c, doc in book_parts(now, changed_books(loaded[p].state, now)).items():
                pids.append(p)
                cids.append(c)
                docs.append(doc)
        if pids:
            await pg.execute(
                "INSERT INTO partner_customer_state AS c (partner_id, customer_id, book) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::json[]) "
                "ON CONFLICT (partner_id, customer_id) DO UPDATE SET book = EXCLUDED.book",
                pids, cids, docs)

    def committed(self, loaded: dict[str, Loaded], after: dict[str, int]) -> None:
        """Remember the timelines the committed transaction wrote."""
        for pid, n in after.items():
            t = loaded[pid].timeline
            self._memory[pid] = Loaded(loaded[pid].entries + n, t, t.state)
            self._memory.move_to_end(pid)
        for pid in loaded.keys() - after.keys():
            if pid in self._memory:
                self._memory.move_to_end(pid)
            elif loaded[pid].entries:
                self._memory[pid] = loaded[pid]
        while len(self._memory) > self.capacity:
            self._memory.popitem(last=False)
