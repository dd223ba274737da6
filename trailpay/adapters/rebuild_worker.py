"""The part of a rebuild that runs in each worker process: read a shard, fold it.

A spawned worker imports this module (and what it needs) before it can start, so it
imports only the pure core, orjson and asyncpg: no SQLAlchemy or Alembic (0.6 s of
imports in trailpay.adapters.rebuild, 0.2 s here). `rebuild` is the parent's side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from trailpay.core.accrual import AccrualError, accrue, new_state
from trailpay.core.attribution import entry_from_dict
from trailpay.core.plans import (
    Enrolled, Enrollment, PlanBook, PlanError, PlanHistory, enrollment_at,
)
from trailpay.core.postings import BalanceKey, MonthKey, add_partner_legs


@dataclass
class Books:
    """Plan histories and enrolment histories, each with the journal seqs that published them."""

    plans: dict[str, PlanHistory]
    enrollments: dict[str, list[Enrolled]]

    def at(self, partner_id: str, journal_seq: int) -> tuple[PlanBook, Enrollment]:
        """The plan book and enrolment an entry at this journal seq was (or would be) accrued with."""
        enrollment = enrollment_at(self.enrollments.get(partner_id, []), journal_seq)
        history = self.plans.get(enrollment.plan_id)
        if history is None:
            raise LookupError(f"plan {enrollment.plan_id!r} had no published version for this event")
        return history.book_before(journal_seq), enrollment


@dataclass
class FoldResult:
    entries: int = 0
    applied: int = 0
    refused: int = 0
    groups: int = 0
    balances: dict[BalanceKey, Decimal] = field(default_factory=dict)
    months: dict[MonthKey, Decimal] = field(default_factory=dict)  # balance_months


def fold(payloads: Iterable[bytes | str | dict[str, Any]], books: Books) -> FoldResult:
    """Fold attributed entries (ledger_entries payloads, in journal order) from empty states."""
    out = FoldResult()
    states: dict[str, Any] = {}
    for payload in payloads:
        d = payload if isinstance(payload, dict) else orjson.loads(payload)
        e = entry_from_dict(d)
        out.entries += 1
        try:
            book, enrollment = books.at(e.partner_id, e.journal_seq)
            groups, states[e.partner_id] = accrue(
                states.get(e.partner_id) or new_state(e.partner_id), e, book, enrollment)
        except (AccrualError, PlanError, LookupError):
            out.refused += 1  # the live service dead-letters these: nothing posts
            continue
        out.applied += 1
        out.groups += len(groups)
        add_partner_legs(out.balances, groups, out.months)
    return out


SHARD_SQL = ("SELECT payload::text FROM ledger_entries "
             "WHERE ($1::int = 1 OR (hashtext(partner_id) & 2147483647) % $1 = $2) "
             "ORDER BY journal_seq, id")


async def _fetch_shard(dsn: str, snapshot: str, shard: int, shards: int) -> list[str]:
    """One shard's entries, read in the rebuild's own snapshot (pg_export_snapshot)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return [r[0] for r in await conn.fetch(SHARD_SQL, shards, shard)]
    finally:
        await conn.close()


def fold_shard(args: tuple[str, str, int, int, Books]) -> FoldResult:
    """A worker process: read its partners' entries itself, then fold them."""
    import asyncio

    dsn, snapshot, shard, shards, books = args
    return fold(asyncio.run(_fetch_shard(dsn, snapshot, shard, shards)), books)


