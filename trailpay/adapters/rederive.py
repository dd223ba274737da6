"""Derive the ledger entries again from the journal's bodies, and name those that differ.

`trailpay rebuild` folds the entries the ledger wrote (`ledger_entries`), so a journal
body changed afterwards (by a superuser with the triggers off) still rebuilt "equal to
the cent": the fold never read it. `rebuild --check` now also decodes every journal
body again, attributes it again the way the ledger did (customer facts to the
partners of their customer's deal, in journal order, parked until the deal), and
compares each derived entry with the stored one. Any difference names the journal
entry (seq, source, id); `trailpay audit verify` finds the same row by its hash chain.

What the body does not say is taken from the stored rows: when trailpay recorded the
entry (`recorded_at`), and the partner of a payout confirmation that named none (the
ledger looked it up from the payout; the journal's `key` keeps it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.cloudevents import EventRejected, decode_kafka
from trailpay.adapters.db import raw
from trailpay.core.attribution import (
    Customer, customer_after, entries_for, entry_from_dict, entry_to_dict, partners_of,
)
from trailpay.core.facts import DealClosed, PayoutConfirmed, PayoutFailed


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A journal entry whose body no longer gives the entries the ledger wrote for it."""

    seq: int
    source: str
    event_id: str
    why: str

    def __str__(self) -> str:
        return f"journal seq {self.seq} ({self.source} / {self.event_id}): {self.why}"


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "recorded_at"}


async def check_entries(conn: AsyncConnection, limit: int = 20) -> tuple[int, list[Mismatch]]:
    """(journal events derived, the first `limit` mismatches) over the whole journal."""
    pg = await raw(conn)
    stored: dict[int, dict[str, dict[str, Any]]] = {}
    # The ledger's streams are partitions of its input topic ("topic/partition"); the
    # gateway's own stream holds plans and enrolments, which make no entries.
    for seq, entry_id, payload in await pg.fetch(
            "SELECT e.journal_seq, e.entry_id, e.payload FROM ledger_entries e "
            "LEFT JOIN journal j ON j.seq = e.journal_seq "
            "WHERE j.seq IS NULL OR j.stream LIKE '%/%'"):
        # through the codec both ways: the ledger's fast writer formats like entry_to_dict
        stored.setdefault(seq, {})[entry_id] = entry_to_dict(entry_from_dict(
            orjson.loads(payload)))
    customers: dict[str, Customer] = {}
    parked: dict[str, list[tuple[Any, ...]]] = {}
    derived: dict[int, list[dict[str, Any]]] = {}
    ident: dict[int, tuple[str, str]] = {}
    out: list[Mismatch] = []
    events = 0

    def attribute(seq: int, env: Any) -> None:
        cust = None if env.fact.partner_level else customers.get(env.fact.customer_id)
        shares = partners_of(env.fact, cust)
        if shares is None:
            parked.setdefault(env.fact.customer_id, []).append((seq, env))
            return
        derived[seq] = [entry_to_dict(e) for e in entries_for(
            seq, env.id, env.source, env.time, env.fact, shares,
            cust.deal_id if cust else None)]

    rows = await pg.fetch("SELECT seq, source, event_id, key, body FROM journal "
                          "WHERE stream LIKE '%/%' ORDER BY seq")
    for seq, source, event_id, key, body in rows:
        events += 1
        ident[seq] = (source, event_id)
        try:
            env = decode_kafka(body.encode(), [])
        except EventRejected as exc:
            out.append(Mismatch(seq, source, event_id, f"its body no longer decodes: {exc}"))
            continue
        if (env.source, env.id) != (source, event_id):
            out.append(Mismatch(seq, source, event_id, f"its body says source {env.source!r} "
                                                      f"and id {env.id!r}"))
            continue
        if isinstance(env.fact, PayoutConfirmed | PayoutFailed) and not env.fact.partner_id:
            env = dataclasses.replace(env, fact=dataclasses.replace(env.fact, partner_id=key))
        attribute(seq, env)
        if isinstance(env.fact, DealClosed):
            cid = env.fact.customer_id
            after = customer_after(env.fact, customers.get(cid))
            if after is not None:
                customers[cid] = after
            for wseq, wenv in sorted(parked.pop(cid, []), key=lambda t: t[0]):
                attribute(wseq, wenv)
    for seq in sorted(set(stored) | set(derived)):
        if len(out) >= limit:
            break
        source, event_id = ident.get(seq, ("?", "?"))
        have = {k: _comparable(v) for k, v in stored.get(seq, {}).items()}
        want = {d["entry_id"]: _comparable(d) for d in derived.get(seq, [])}
        if have == want:
            continue
        if seq not in ident:
            out.append(Mismatch(seq, source, event_id, "entries without a journal row"))
            continue
        for entry_id in sorted(set(have) | set(want)):
            if have.get(entry_id) != want.get(entry_id):
                fields = sorted(k for k in set(have.get(entry_id, {})) | set(want.get(entry_id, {}))
                                if have.get(entry_id, {}).get(k) != want.get(entry_id, {}).get(k))
                what = ("is missing" if entry_id not in have else "is not in its body"
                        if entry_id not in want else f"differs in {', '.join(fields)}")
                out.append(Mismatch(seq, source, event_id,
                                    f"entry {entry_id} {what} (the body says otherwise)"))
                break
    return events, out[:limit]
