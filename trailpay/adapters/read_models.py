"""Queries behind the gateway's reads: balances and statements, straight from projections."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.db import raw
from trailpay.core.postings import COMPANY_ACCOUNT
from trailpay.core.statements import (
    Balances, LegRow, Statement, balances_as_of, build_statement, month_bounds,
)

LEG_COLUMNS = ("effective_at, currency, bucket, amount, available_on, group_id, event_id, "
               "event_type, customer_id, deal_id, rule_id, rule_kind, plan_id, plan_version, "
               "base, rate, multiplier, share, explanation")


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


async def partner_exists(conn: AsyncConnection, partner_id: str) -> bool:
    pg = await raw(conn)
    return bool(await pg.fetchval("SELECT 1 FROM partners WHERE partner_id = $1", partner_id))


async def balances(conn: AsyncConnection, partner_id: str, as_of: date | None) -> Balances:
    """Live from the balances projection; as of a past date from the posting legs."""
    pg = await raw(conn)
    today = datetime.now(UTC).date()
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


async def _legs(pg, partner_id: str, start: datetime | None, end: datetime) -> list[LegRow]:
    rows = await pg.fetch(
        f"SELECT {LEG_COLUMNS} FROM postings WHERE partner_id = $1 AND account <> $2 "
        "AND effective_at < $3 AND ($4::timestamptz IS NULL OR effective_at >= $4) "
        "ORDER BY effective_at, group_id, leg", partner_id, COMPANY_ACCOUNT, end, start)
    return [LegRow(*r) for r in rows]


async def statement(conn: AsyncConnection, partner_id: str, month: str) -> Statement:
    first, last = month_bounds(month)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    pg = await raw(conn)
    opening = await _legs(pg, partner_id, None, start)
    lines = await _legs(pg, partner_id, start, _end_of(last))
    return build_statement(partner_id, month, opening, lines)
