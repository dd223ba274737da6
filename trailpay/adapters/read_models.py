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
    Balances, Statement, balances_as_of, build_statement, make_leg_row, month_bounds,
)

LEG_COLUMNS = ("effective_at, currency, bucket, amount, available_on, group_id, event_id, "
               "event_type, customer_id, deal_id, rule_id, rule_kind, plan_id, plan_version, "
               "base, rate, multiplier, share, explanation, unrounded")
# The same, as selected: the explanation's figures come as text in their shortest form
# (trim_scale: 0.050000 -> 0.05), which is how statements show them; nothing computes
# with them, and decoding them as text instead of Decimal is a quarter of a cold
# statement's fetch.
_LEG_SELECT = LEG_COLUMNS.replace("base, rate, multiplier, share, explanation, unrounded",
                                  "trim_scale(base)::text, trim_scale(rate)::text, "
                                  "trim_scale(multiplier)::text, trim_scale(share)::text, "
                                  "explanation, trim_scale(unrounded)::text")


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


# --- payouts and disputes as views ------------------------------------------------------------

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


async def partner_exists(conn: AsyncConnection, partner_id: str) -> bool:
    pg = await raw(conn)
    return bool(await pg.fetchval("SELECT 1 FROM partners WHERE partner_id = $1", partner_id))


# A partner's version: what changes whenever anything a statement or a balance shows
# changes. The accrual service writes a partner's postings, balances, payouts and
# disputes only for the partner of the entries it applies, and only in the transaction
# that rewrites that partner's partner_state row with `entries` grown by the number
# applied (at least one; xmin changes too). Absent partners have no row. One primary-key
# lookup per partner, for many partners at once.
_VERSION = "s.entries, s.xmin::text"
_OF_PARTNER = "FROM partners p LEFT JOIN partner_state s ON s.partner_id = p.partner_id"
PARTNER_VERSIONS = f"SELECT p.partner_id, {_VERSION} {_OF_PARTNER} WHERE p.partner_id = ANY($1::text[])"


async def partner_versions(pg: Any, partner_ids: list[str]) -> dict[str, tuple]:
    """{partner_id: version} for the partners that exist (pg: an asyncpg pool or connection)."""
    rows = await pg.fetch(PARTNER_VERSIONS, partner_ids)
    return {r[0]: (r[1], r[2]) for r in rows}


# The company's account is a literal, not a parameter, so the planner can use the partial
# indexes on postings, which hold partner legs only.
_PARTNER_LEG = f"account <> '{COMPANY_ACCOUNT}'"

# Snapshot reads: the partner's version and everything a page shows, in ONE statement, so
# one round trip and one snapshot (a single statement sees one, even in READ COMMITTED).
# What is cached under a version is exactly what that version was. The parts come back as
# arrays of records (tuples in asyncpg), in the order the page lists them.
# Balances are summed per (currency, bucket, hold class): the class coarsens available_on to
# what `bucket_on` can tell apart on the as-of day, ended by then (that day) or not (NULL),
# so a partner with a pending amount for every day of the year costs a few rows.
_SUMMED = ("ARRAY(SELECT ROW(x.currency, x.bucket, x.c, sum(x.amount)) FROM (SELECT currency, "
           "bucket, amount, CASE WHEN {ended} THEN {as_of}::date END AS c FROM {legs}) x "
           "GROUP BY x.currency, x.bucket, x.c)")
BALANCES_LIVE = (
    "SELECT {version}, {summed} {of_partner} WHERE p.partner_id = $1".format(
        version=_VERSION, of_partner=_OF_PARTNER, summed=_SUMMED.format(
            ended="available_on BETWEEN '0001-01-02' AND $2", as_of="$2",
            legs="balances b WHERE b.partner_id = $1")))
BALANCES_AS_OF = (
    "SELECT {version}, {summed} {of_partner} WHERE p.partner_id = $1".format(
        version=_VERSION, of_partner=_OF_PARTNER, summed=_SUMMED.format(
            ended="available_on <= $3", as_of="$3",
            legs=f"postings g WHERE g.partner_id = $1 AND g.{_PARTNER_LEG} "
                 "AND g.effective_at < $2")))


@dataclass(frozen=True, slots=True)
class BalancesSnapshot:
    version: tuple
    balances: Balances


async def balances_snapshot(pg: Any, partner_id: str, as_of: date | None,
                            today: date | None = None) -> BalancesSnapshot | None:
    """Live from the balances projection; as of a past date from the posting legs.
    None: no such partner."""
    today = today or datetime.now(UTC).date()
    if as_of is None or as_of >= today:
        row = await pg.fetchrow(BALANCES_LIVE, partner_id, as_of or today)
    else:
        row = await pg.fetchrow(BALANCES_AS_OF, partner_id, _end_of(as_of), as_of)
    if row is None:
        return None
    return BalancesSnapshot((row[0], row[1]), balances_as_of(row[2], as_of or today))


# A statement is one statement returning plain rows (asyncpg decodes those at twice the
# speed of the same rows nested in an array of records), in a total order, so the same
# version always renders the same bytes (and ETag):
# - part -1, the head: the partner's version and the month's payouts and disputes; no
#   head, no partner.
# - part 0: the opening, from balance_months: the partner legs of the months before,
#   summed per (currency, bucket, hold class) (years of history cost a few hundred rows;
#   reading them leg by leg cost 3-20 ms a statement). The hold class coarsens
#   available_on to what `bucket_on` can tell apart on the day before the month: ended by
#   then (that day) or not (NULL: pending through the month; those ending in it are part 1,
#   as is '0001-01-01', the projections' "no date").
# - part 1: pending legs before the month whose hold ends in it, each for its full line,
#   since each makes a "hold ended" line (index postings_partner_pending).
# - part 2: the month's own legs (index postings_partner_time).
# Leg rows leave the head's columns NULL and the head leaves the leg columns NULL.
_ENDS_IN_MONTH = "bucket = 'pending' AND available_on BETWEEN $3 AND $4"
_HOLD_CLASS = "CASE WHEN available_on BETWEEN '0001-01-02' AND $3::date - 1 THEN $3::date - 1 END"
_NO_LEG = "'', '', '', NULL, NULL, '', '', NULL, NULL::integer, NULL::text, NULL::text, " \
          "NULL::text, NULL::text, '', NULL::text"
_LEGS = LEG_COLUMNS.count(",") + 1  # a row: part, the leg columns, leg, then the head's
_HEAD_AT = 1 + _LEGS + 1               # entries, xmin, payouts, disputes from here
_NO_HEAD = "NULL, NULL, NULL, NULL"
_HEAD = (
    "SELECT -1, " + ", ".join(["NULL"] * (_LEGS + 1)) + f", {_VERSION}, "
    f"ARRAY(SELECT ROW({_PAYOUT_COLUMNS}) FROM {_PAYOUT_FROM} WHERE o.partner_id = $1 "
    "AND o.as_of BETWEEN $3 AND $4 ORDER BY o.journal_seq, o.payout_id), "
    f"ARRAY(SELECT ROW({_DISPUTE_COLUMNS}) FROM disputes d WHERE d.partner_id = $1 AND "
    "((d.opened_at >= $2 AND d.opened_at < $5) OR (d.resolved_at >= $2 AND d.resolved_at < $5)) "
    f"ORDER BY d.opened_seq) {_OF_PARTNER} WHERE p.partner_id = $1")
_LEG_PARTS = (
    f"(SELECT 0, $2::timestamptz, currency, bucket, sum(amount), {_HOLD_CLASS}, {_NO_LEG}, "
    f"NULL::smallint, {_NO_HEAD} FROM balance_months WHERE partner_id = $1 AND month < $3 "
    f"AND NOT ({_ENDS_IN_MONTH}) GROUP BY 3, 4, 6) "
    f"UNION ALL (SELECT 1, {_LEG_SELECT}, leg, {_NO_HEAD} FROM postings WHERE partner_id = $1 "
    f"AND {_ENDS_IN_MONTH} AND effective_at < $2 AND {_PARTNER_LEG}) "
    f"UNION ALL (SELECT 2, {_LEG_SELECT}, leg, {_NO_HEAD} FROM postings WHERE partner_id = $1 "
    f"AND {_PARTNER_LEG} AND effective_at >= $2 AND effective_at < $5)")
STATEMENT = (
    f"SELECT * FROM (({_HEAD}) UNION ALL {_LEG_PARTS}) "
    f"AS l(part, {LEG_COLUMNS}, leg, entries, xmin, payouts, disputes) "
    "ORDER BY l.part, l.effective_at, l.group_id, l.leg, l.currency, l.bucket, l.available_on")


@dataclass(frozen=True, slots=True)
class StatementSnapshot:
    version: tuple
    statement: Statement
    payouts: list[PayoutView]  # the month's payouts (by as_of)
    disputes: list[DisputeView]  # opened or resolved in the month


async def statement_snapshot(pg: Any, partner_id: str, month: str) -> StatementSnapshot | None:
    """A partner's statement for a month (YYYY-MM), straight from the postings, with the
    month's payouts and disputes and the version they are at. None: no such partner."""
    first, last = month_bounds(month)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    rows = await pg.fetch(STATEMENT, partner_id, start, first, last, _end_of(last))
    if not rows or rows[0][0] != -1:
        return None
    entries, xmin, payouts, disputes = rows[0][_HEAD_AT:]
    opening = [make_leg_row(*r[1:1 + _LEGS]) for r in rows if r[0] in (0, 1)]
    lines = [make_leg_row(*r[1:1 + _LEGS]) for r in rows if r[0] == 2]
    return StatementSnapshot((entries, xmin), build_statement(partner_id, month, opening, lines),
                             [_payout(r) for r in payouts], [_dispute(r) for r in disputes])


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

