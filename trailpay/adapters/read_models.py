"""Queries behind the gateway's reads: balances, statements, payouts, payables and disputes,
straight from projections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.db import raw
from trailpay.core.postings import COMPANY_ACCOUNT
from trailpay.core.statements import (
    Balances, LegRow, Statement, balances_as_of, build_statement, month_bounds,
)

LEG_COLUMNS = ("effective_at, currency, bucket, amount, available_on, group_id, event_id, "
               "event_type, customer_id, deal_id, rule_id, rule_kind, plan_id, plan_version, "
               "base, rate, multiplier, share, explanation, unrounded")


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


async def partner_exists(conn: AsyncConnection, partner_id: str) -> bool:
    pg = await raw(conn)
    return bool(await pg.fetchval("SELECT 1 FROM partners WHERE partner_id = $1", partner_id))


# A partner's version: what changes whenever anything a statement or a balance shows
# changes. The accrual service writes a partner's postings, balances, payouts and
# disputes only in the transaction that adds its accrual_applied rows (under the
# partner's advisory lock, so applied_order grows in commit order per partner) and
# rewrites its partner_state row (entries grows; xmin changes). Absent partners have
# no row. One index lookup per partner, for many partners at once.
PARTNER_VERSIONS = (
    "SELECT p.partner_id, s.entries, s.xmin::text, "
    "(SELECT max(a.applied_order) FROM accrual_applied a WHERE a.partner_id = p.partner_id) "
    "FROM partners p LEFT JOIN partner_state s ON s.partner_id = p.partner_id "
    "WHERE p.partner_id = ANY($1::text[])")


async def partner_versions(pg: Any, partner_ids: list[str]) -> dict[str, tuple]:
    """{partner_id: version} for the partners that exist (pg: an asyncpg pool or connection)."""
    rows = await pg.fetch(PARTNER_VERSIONS, partner_ids)
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def balances(conn: AsyncConnection, partner_id: str, as_of: date | None) -> Balances:
    """Live from the balances projection; as of a past date from the posting legs."""
    return await balances_pg(await raw(conn), partner_id, as_of)


async def balances_pg(pg: Any, partner_id: str, as_of: date | None,
                      today: date | None = None) -> Balances:
    today = today or datetime.now(UTC).date()
    if as_of is None or as_of >= today:
        rows = await pg.fetch(
            "SELECT currency, bucket, NULLIF(available_on, '0001-01-01'), amount FROM balances "
            "WHERE partner_id = $1", partner_id)
        return balances_as_of((tuple(r) for r in rows), as_of or today)
    rows = await pg.fetch(
        "SELECT currency, bucket, available_on, sum(amount) FROM postings "
        "WHERE partner_id = $1 AND account <> $2 AND effective_at < $3 "
        "GROUP BY currency, bucket, available_on", partner_id, COMPANY_ACCOUNT, _end_of(as_of))
    return balances_as_of((tuple(r) for r in rows), as_of)


# A statement in one round trip. The legs before the month are summed per (currency,
# bucket, available_on), which gives the same opening balances as reading them one by one
# (a partner with years of history costs a few rows, not all its legs): part 0. Only
# pending legs before the month whose hold ends inside it are read one by one, since
# each makes a "hold ended" line: part 1. Part 2 is the month's own legs.
_NO_LEG = "'', '', '', NULL, NULL, '', '', NULL, NULL::integer, NULL::numeric, NULL::numeric, " \
          "NULL::numeric, NULL::numeric, '', NULL::numeric"
STATEMENT_LEGS = (
    f"(SELECT 0 AS part, $3::timestamptz, currency, bucket, sum(amount), available_on, {_NO_LEG}, "
    "NULL::smallint AS leg FROM postings WHERE partner_id = $1 AND account <> $2 "
    "AND effective_at < $3 AND NOT (bucket = 'pending' AND available_on BETWEEN $4 AND $5) "
    "GROUP BY currency, bucket, available_on) "
    f"UNION ALL (SELECT 1, {LEG_COLUMNS}, leg FROM postings WHERE partner_id = $1 "
    "AND account <> $2 AND effective_at < $3 AND bucket = 'pending' "
    "AND available_on BETWEEN $4 AND $5) "
    f"UNION ALL (SELECT 2, {LEG_COLUMNS}, leg FROM postings WHERE partner_id = $1 "
    "AND account <> $2 AND effective_at >= $3 AND effective_at < $6) "
    "ORDER BY 1, 2, 7, 22")


async def statement(conn: AsyncConnection, partner_id: str, month: str) -> Statement:
    """A partner's statement for a month (YYYY-MM), straight from the postings."""
    return await statement_pg(await raw(conn), partner_id, month)


async def statement_pg(pg: Any, partner_id: str, month: str) -> Statement:
    """`statement` on an asyncpg connection, in one query (the same statement, line for line)."""
    first, last = month_bounds(month)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    rows = await pg.fetch(STATEMENT_LEGS, partner_id, COMPANY_ACCOUNT, start, first, last,
                          _end_of(last))
    opening = [LegRow(*r[1:21]) for r in rows if r[0] != 2]
    lines = [LegRow(*r[1:21]) for r in rows if r[0] == 2]
    return build_statement(partner_id, month, opening, lines)


# --- payouts, payables, disputes ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PayoutView:
    payout_id: str
    run_id: str
    partner_id: str
    currency: str
    amount: Decimal
    as_of: date
    status: str
    reference: str | None
    journal_seq: int
    created_at: datetime
    settled_at: datetime | None
    payment: Any = None


@dataclass(frozen=True, slots=True)
class DisputeView:
    dispute_id: str
    partner_id: str
    posting_id: str
    reason: str
    opened_by: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    adjustment: dict[str, Any] | None


_PAYOUT_COLUMNS = ("o.payout_id, o.run_id, o.partner_id, o.currency, o.amount, o.as_of, o.status, "
                   "o.reference, o.journal_seq, o.created_at, o.settled_at, p.payment::text")
_PAYOUT_FROM = "payouts o LEFT JOIN partners p ON p.partner_id = o.partner_id"
_DISPUTE_COLUMNS = ("dispute_id, partner_id, posting_id, reason, opened_by, status, opened_at, "
                    "resolved_at, resolved_by, adjustment::text")


def _payout(r: Any) -> PayoutView:
    return PayoutView(*r[:11], payment=orjson.loads(r[11]) if r[11] else None)


def _dispute(r: Any) -> DisputeView:
    return DisputeView(*r[:9], adjustment=orjson.loads(r[9]) if r[9] else None)


async def payout(conn: AsyncConnection, payout_id: str) -> PayoutView | None:
    pg = await raw(conn)
    row = await pg.fetchrow(f"SELECT {_PAYOUT_COLUMNS} FROM {_PAYOUT_FROM} "
                            "WHERE o.payout_id = $1", payout_id)
    return _payout(row) if row else None


async def payables(conn: AsyncConnection, after: tuple[int, str] | None, limit: int,
                   partner_id: str | None = None, currency: str | None = None
                   ) -> list[PayoutView]:
    """Payouts awaiting payment, in a stable order (the run entry's journal seq, then id)."""
    return await payables_pg(await raw(conn), after, limit, partner_id, currency)


async def payables_pg(pg: Any, after: tuple[int, str] | None, limit: int,
                      partner_id: str | None = None, currency: str | None = None
                      ) -> list[PayoutView]:
    rows = await pg.fetch(
        f"SELECT {_PAYOUT_COLUMNS} FROM {_PAYOUT_FROM} WHERE o.status = 'in_payout' "
        "AND ($1::bigint IS NULL OR (o.journal_seq, o.payout_id) > ($1, $2::text)) "
        "AND ($3::text IS NULL OR o.partner_id = $3) AND ($4::text IS NULL OR o.currency = $4) "
        "ORDER BY o.journal_seq, o.payout_id LIMIT $5",
        after[0] if after else None, after[1] if after else None, partner_id, currency, limit)
    return [_payout(r) for r in rows]


async def run_payouts(conn: AsyncConnection, run_id: str,
                      partner_id: str | None = None) -> list[PayoutView]:
    pg = await raw(conn)
    rows = await pg.fetch(
        f"SELECT {_PAYOUT_COLUMNS} FROM {_PAYOUT_FROM} WHERE o.run_id = $1 "
        "AND ($2::text IS NULL OR o.partner_id = $2) ORDER BY o.journal_seq, o.payout_id",
        run_id, partner_id)
    return [_payout(r) for r in rows]


async def posting_owner(conn: AsyncConnection, posting_id: str) -> str | None:
    """The partner whose statement line (posting group) this is."""
    pg = await raw(conn)
    return await pg.fetchval("SELECT partner_id FROM postings WHERE group_id = $1 "
                             "AND account <> $2 LIMIT 1", posting_id, COMPANY_ACCOUNT)


async def dispute(conn: AsyncConnection, dispute_id: str) -> DisputeView | None:
    pg = await raw(conn)
    row = await pg.fetchrow(f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE dispute_id = $1",
                            dispute_id)
    return _dispute(row) if row else None


async def disputes(conn: AsyncConnection, partner_id: str | None, status: str | None,
                   limit: int = 500) -> list[DisputeView]:
    pg = await raw(conn)
    rows = await pg.fetch(
        f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE ($1::text IS NULL OR partner_id = $1) "
        "AND ($2::text IS NULL OR status = $2) ORDER BY opened_seq LIMIT $3",
        partner_id, status, limit)
    return [_dispute(r) for r in rows]


async def statement_extras(conn: AsyncConnection, partner_id: str, month: str
                           ) -> tuple[list[PayoutView], list[DisputeView]]:
    """The month's payouts (by as_of) and the disputes opened or resolved in it."""
    return await statement_extras_pg(await raw(conn), partner_id, month)


async def statement_extras_pg(pg: Any, partner_id: str, month: str
                              ) -> tuple[list[PayoutView], list[DisputeView]]:
    first, last = month_bounds(month)
    start, end = datetime.combine(first, time.min, tzinfo=UTC), _end_of(last)
    payouts_ = await pg.fetch(
        f"SELECT {_PAYOUT_COLUMNS} FROM {_PAYOUT_FROM} WHERE o.partner_id = $1 "
        "AND o.as_of BETWEEN $2 AND $3 ORDER BY o.journal_seq, o.payout_id",
        partner_id, first, last)
    disputes_ = await pg.fetch(
        f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE partner_id = $1 AND "
        "((opened_at >= $2 AND opened_at < $3) OR (resolved_at >= $2 AND resolved_at < $3)) "
        "ORDER BY opened_seq", partner_id, start, end)
    return [_payout(r) for r in payouts_], [_dispute(r) for r in disputes_]
