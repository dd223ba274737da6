"""The accrual's writes: posting legs (COPY), the balances projections, and progress.

Progress (accrual_applied) and effects commit in one transaction with the postings, so
a consumer killed at any instant neither loses nor doubles an entry; idempotency is
keyed on entry_id, never on broker offsets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay import metrics
from trailpay.adapters.copy_text import day, number, stamp, text
from trailpay.adapters.db import raw
from trailpay.core.journal import LedgerEntry
from trailpay.core.postings import (
    COMPANY_ACCOUNT, BalanceKey, MonthKey, PostingGroup, add_partner_legs,
)

BALANCE_KEYS = ("partner_id", "currency", "bucket", "available_on")
MONTH_KEYS = ("partner_id", "month", "currency", "bucket", "available_on")
# The COPY's column order: what a posting group's legs share, then each leg's own.
POSTING_COLUMNS = (
    "group_id", "entry_id", "journal_seq", "event_id", "event_type", "effective_at",
    "partner_id", "customer_id", "deal_id", "rule_id", "rule_kind", "plan_id", "plan_version",
    "base", "rate", "multiplier", "share", "unrounded", "explanation",
    "leg", "account", "bucket", "currency", "amount", "available_on",
)


def posting_copy(groups: list[PostingGroup]) -> bytes:
    """The groups' legs as COPY text (POSTING_COLUMNS), one line a leg: the columns a
    group's legs share are formatted once, then each leg adds its own six. (Buckets are
    the core's own constants, with nothing to escape.)"""
    lines: list[str] = []
    add = lines.append
    for g in groups:
        x = g.explanation
        shared = (
            f"{text(g.group_id)}\t{text(g.entry_id)}\t{g.journal_seq}\t{text(g.event_id)}\t"
            f"{text(g.event_type)}\t{stamp(g.effective_at)}\t{text(g.partner_id)}\t"
            f"{text(g.customer_id)}\t{text(g.deal_id)}\t{text(x.rule_id)}\t{text(x.rule_kind)}\t"
            f"{text(x.plan_id)}\t{number(x.plan_version)}\t{number(x.base)}\t{number(x.rate)}\t"
            f"{number(x.multiplier)}\t{number(x.share)}\t{number(x.unrounded)}\t"
            f"{text(x.sentence)}\t")
        for n, leg in enumerate(g.legs):
            m = leg.amount
            add(f"{shared}{n}\t{text(leg.account)}\t{leg.bucket}\t{text(m.currency)}\t"
                f"{m.amount}\t{day(leg.available_on)}\n")
    return "".join(lines).encode()


async def _posting_chunks(groups: list[PostingGroup], size: int = 500
                          ) -> AsyncIterator[bytes]:
    for start in range(0, len(groups), size):
        yield posting_copy(groups[start:start + size])


async def claim(conn: AsyncConnection, entries: list[LedgerEntry]) -> set[str]:
    """Record entries as applied; returns those not applied before (the fresh ones).
    The caller holds the entries' partners' locks, so no other writer claims them between
    the lookup and the COPY (which is 1.25x the rows/s of INSERT ... ON CONFLICT here)."""
    pg = await raw(conn)
    seen = {r[0] for r in await pg.fetch(
        "SELECT entry_id FROM accrual_applied WHERE entry_id = ANY($1::text[])",
        [e.entry_id for e in entries])}
    fresh = [e for e in entries if e.entry_id not in seen]
    if fresh:
        await pg.copy_records_to_table(
            "accrual_applied", columns=("entry_id", "partner_id", "journal_seq"),
            records=[(e.entry_id, e.partner_id, e.journal_seq) for e in fresh])
    return {e.entry_id for e in fresh}


async def _upsert(pg, table: str, keys: tuple[str, ...], types: tuple[str, ...],
                  delta: dict[tuple, Decimal]) -> None:
    """Add amounts to a projection's rows, creating the missing ones; keys in sorted order,
    so concurrent batches lock rows in one order. The amounts travel as text, as the
    posting legs do (copy_text: asyncpg's numeric encoder is the slow part)."""
    rows = sorted(delta)
    cols = ", ".join(keys)
    await pg.execute(
        f"INSERT INTO {table} AS b ({cols}, amount) SELECT * FROM unnest("
        + ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, 1))
        + f", ${len(types) + 1}::text[]::numeric[]) "
        f"ON CONFLICT ({cols}) DO UPDATE SET amount = b.amount + EXCLUDED.amount",
        *([k[i] for k in rows] for i in range(len(keys))), [str(delta[k]) for k in rows])


async def write(conn: AsyncConnection, groups: list[PostingGroup]) -> None:
    pg = await raw(conn)
    if not groups:
        return
    # COPY text, not binary: a third of the client's cost a leg (trailpay.adapters.copy_text).
    # Chunks from an async iterable: a file object would be read through a thread pool (its
    # threads' malloc arenas held 120 MiB more per accrual process), and one buffer for
    # the whole batch peaks at a few MB of short-lived strings.
    await pg.copy_to_table("postings", source=_posting_chunks(groups), columns=POSTING_COLUMNS,
                           format="text")
    totals: dict[BalanceKey, Decimal] = {}
    months: dict[MonthKey, Decimal] = {}
    add_partner_legs(totals, groups, months)
    counted: Counter[tuple[str, str]] = Counter(
        (g.explanation.rule_kind, leg.bucket)
        for g in groups for leg in g.legs if leg.account != COMPANY_ACCOUNT)
    for (kind, bucket), n in counted.items():
        metrics.POSTINGS.labels(kind, bucket).inc(n)
    await _upsert(pg, "balances", BALANCE_KEYS, ("text", "text", "text", "date"), totals)
    await _upsert(pg, "balance_months", MONTH_KEYS, ("text", "date", "text", "text", "date"),
                  months)




async def lock_partners(conn: AsyncConnection, partner_ids: list[str]) -> None:
    """One writer per partner at a time, even while a rebalance hands partitions over:
    take the partners' locks (in a fixed order) before claiming or reading state."""
    pg = await raw(conn)
    await pg.execute("SELECT pg_advisory_xact_lock(hashtext(p)) FROM "
                     "unnest($1::text[]) AS p ORDER BY p", sorted(partner_ids))


async def mark_dead(conn: AsyncConnection, entry_ids: list[str]) -> None:
    """Entries the engine refused (their dead letters are written beside)."""
    if entry_ids:
        pg = await raw(conn)
        await pg.execute("UPDATE accrual_applied SET outcome = 'dead_letter' "
                         "WHERE entry_id = ANY($1::text[])", entry_ids)

