"""What the programme views read: partners' applied facts and the commission their postings
moved (core.programme turns them into metrics, comparisons and forecasts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters.db import raw
from trailpay.adapters.plan_store import load_enrollments
from trailpay.core.attribution import entry_from_dict
from trailpay.core.facts import COMMAND_TYPES, FACT_TYPES
from trailpay.core.journal import LedgerEntry
from trailpay.core.plans import Books, PlanHistory, parse_plan
from trailpay.core.postings import COMPANY_ACCOUNT
from trailpay.core.programme.metrics import CostLine, PartnerRecord

# The facts metrics read: CRM and billing facts, not trailpay's own commands.
FACTS = sorted(set(FACT_TYPES) - COMMAND_TYPES)


def end_of(day: date) -> datetime:
    """The first instant after `day` (UTC)."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


# A partner's entries the accrual applied (a refused one is marked dead_letter), dated
# before $2, for the partners named (NULL: all).
_ENTRIES = (
    "SELECT e.payload::text FROM ledger_entries e "
    "JOIN accrual_applied a ON a.entry_id = e.entry_id "
    "JOIN journal j ON j.seq = e.journal_seq "
    "WHERE ($1::text[] IS NULL OR e.partner_id = ANY($1::text[])) AND j.effective_at < $2 "
    "AND a.outcome <> 'dead_letter' AND j.type = ANY($3::text[])")
# Per partner, day, rule kind and currency: what the company expensed (its legs are
# negative) and what went to forfeited or clawed back, from the postings.
_COSTS = (
    "SELECT partner_id, (effective_at AT TIME ZONE 'UTC')::date, rule_kind, currency, "
    f"-sum(amount) FILTER (WHERE account = '{COMPANY_ACCOUNT}'), "
    f"sum(amount) FILTER (WHERE account <> '{COMPANY_ACCOUNT}' "
    "AND bucket IN ('forfeited', 'clawed_back')) "
    "FROM postings WHERE ($1::text[] IS NULL OR partner_id = ANY($1::text[])) "
    "AND effective_at >= $2 AND effective_at < $3 "
    f"AND (account = '{COMPANY_ACCOUNT}' OR bucket IN ('forfeited', 'clawed_back')) "
    "GROUP BY 1, 2, 3, 4")


async def partner_types(conn: AsyncConnection, partner_type: str | None = None,
                        plan_id: str | None = None) -> dict[str, str]:
    """partner -> its current type (of one type, or on one plan, when given)."""
    pg = await raw(conn)
    rows = await pg.fetch("SELECT partner_id, type FROM partners WHERE ($1::text IS NULL "
                          "OR type = $1) AND ($2::text IS NULL OR plan_id = $2)",
                          partner_type, plan_id)
    return {r[0]: r[1] for r in rows}


async def entries(pg: Any, partner_ids: list[str] | None, before: datetime
                  ) -> dict[str, list[LedgerEntry]]:
    out: dict[str, list[LedgerEntry]] = {}
    for r in await pg.fetch(_ENTRIES, partner_ids, before, FACTS):
        e = entry_from_dict(orjson.loads(r[0]))
        out.setdefault(e.partner_id, []).append(e)
    return out


async def records(conn: AsyncConnection, start: date, end: date,
                  partner_type: str | None = None, partner_ids: list[str] | None = None,
                  plan_id: str | None = None) -> list[PartnerRecord]:
    """Every enrolled partner (of a type, on a plan, or these ids) with its facts dated before `end`
    (earlier ones too: cohorts and active customers need them) and its costs in
    [start, end)."""
    types = await partner_types(conn, partner_type, plan_id)
    if partner_ids is not None:
        types = {p: t for p, t in types.items() if p in set(partner_ids)}
    ids = sorted(types) if (partner_type or plan_id or partner_ids is not None) else None
    pg = await raw(conn)
    start_at, end_at = end_of(start - timedelta(days=1)), end_of(end - timedelta(days=1))
    by_partner = await entries(pg, ids, end_at)
    costs: dict[str, list[CostLine]] = {}
    for r in await pg.fetch(_COSTS, ids, start_at, end_at):
        costs.setdefault(r[0], []).append(CostLine(r[0], r[1], r[2], r[3], r[4] or 0, r[5] or 0))
    return [PartnerRecord(p, t, tuple(by_partner.get(p, ())), tuple(costs.get(p, ())))
            for p, t in sorted(types.items())]


async def partner_books(conn: AsyncConnection, partner_id: str) -> Books:
    """The books one partner's entries are accrued with: its enrolments and every version of
    the plans it was ever on."""
    enrollments = await load_enrollments(conn, [partner_id])
    plan_ids = sorted({h.enrollment.plan_id for hs in enrollments.values() for h in hs})
    pg = await raw(conn)
    plans: dict[str, PlanHistory] = {}
    for r in await pg.fetch("SELECT plan_id, journal_seq, document::text FROM plan_versions "
                            "WHERE plan_id = ANY($1::text[])", plan_ids):
        plans.setdefault(r[0], PlanHistory(r[0])).add(r[1], parse_plan(orjson.loads(r[2])))
    return Books(plans, enrollments)


async def partner_entries(conn: AsyncConnection, partner_id: str, through: date
                          ) -> list[LedgerEntry]:
    """One partner's applied entries dated on or before `through`, commands included (the
    forecast folds them: payouts and disputes are part of its state)."""
    pg = await raw(conn)
    rows = await pg.fetch(_ENTRIES, [partner_id], end_of(through), sorted(FACT_TYPES))
    return [entry_from_dict(orjson.loads(r[0])) for r in rows]


async def earnings(conn: AsyncConnection, partner_id: str, since: date
                   ) -> list[tuple[date, str, str, Any]]:
    """(first day of month, currency, rule kind, earned) since a month: what the company
    expensed for the partner, by the month the postings are effective in."""
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT date_trunc('month', effective_at AT TIME ZONE 'UTC')::date, currency, rule_kind, "
        "-sum(amount) FROM postings WHERE partner_id = $1 AND account = "
        f"'{COMPANY_ACCOUNT}' AND effective_at >= $2 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        partner_id, end_of(since - timedelta(days=1)))
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def balance_months(conn: AsyncConnection, partner_id: str
                         ) -> list[tuple[date, str, str, date | None, Any]]:
    """(month, currency, bucket, available_on, change) of the partner's balances, from the
    balance_months projection (what statements' openings are summed from)."""
    pg = await raw(conn)
    rows = await pg.fetch("SELECT month, currency, bucket, available_on, amount FROM "
                          "balance_months WHERE partner_id = $1 ORDER BY month", partner_id)
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
