"""Requesting payout runs: one payout.run_requested per partner, from HTTP or the scheduler.

POST /v1/payout-runs and the accrual service's scheduler both call `request`, which
builds the same event for the same (as_of, partner): id payout-run:<as_of>:<partner>,
time the end of as_of. Asking twice is therefore one journal event, and a run is
idempotent whoever asks. `due` gathers what the pure `due_runs` needs to decide
which partners a plan's cadence makes due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay import metrics
from trailpay.adapters.commands import command_event, send
from trailpay.adapters.db import raw
from trailpay.core.facts import PayoutRunRequested
from trailpay.core.payouts import Schedulable, due_runs, run_event_id, run_id


def run_time(as_of: date) -> datetime:
    """A run's effective time: the last second of its as_of day (UTC)."""
    return datetime.combine(as_of, time(23, 59, 59), tzinfo=UTC)


def run_event(partner_id: str, as_of: date) -> bytes:
    return command_event(run_event_id(as_of, partner_id), PayoutRunRequested.type,
                         run_time(as_of), {"partner_id": partner_id, "run_id": run_id(as_of),
                                           "as_of": as_of.isoformat()})


async def request(producer: AIOKafkaProducer, topic: str, runs: Sequence[tuple[str, date]],
                  origin: str) -> list[str]:
    """Produce the run events for (partner_id, as_of) pairs; returns their event ids.
    `origin` (http, scheduler) labels trailpay_payout_runs_requested_total."""
    await send(producer, topic, [(p, run_event(p, as_of)) for p, as_of in runs])
    metrics.PAYOUT_RUNS.labels(origin).inc(len(runs))
    return [run_event_id(as_of, p) for p, as_of in runs]


async def enrolled(conn: AsyncConnection, partner_ids: Sequence[str] | None = None) -> list[str]:
    """Enrolled partners (all, or those of `partner_ids` that exist), sorted."""
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT partner_id FROM partners WHERE $1::text[] IS NULL OR partner_id = ANY($1) "
        "ORDER BY partner_id", list(partner_ids) if partner_ids is not None else None)
    return [r[0] for r in rows]


async def due(conn: AsyncConnection, today: date,
              partner_ids: Sequence[str] | None = None) -> list[tuple[str, date]]:
    """(partner_id, as_of) of the runs the plans' cadences make due on `today`."""
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT p.partner_id, p.plan_id, "
        "       (SELECT min(j.received_at) FROM partner_enrollments e "
        "          JOIN journal j ON j.seq = e.journal_seq WHERE e.partner_id = p.partner_id), "
        "       s.state->>'last_run' "
        "FROM partners p LEFT JOIN partner_state s ON s.partner_id = p.partner_id "
        "WHERE $1::text[] IS NULL OR p.partner_id = ANY($1)",
        list(partner_ids) if partner_ids is not None else None)
    plans = sorted({r[1] for r in rows})
    cadences: dict[str, list[tuple[date, str]]] = {}
    for r in await pg.fetch(
            "SELECT plan_id, effective_from, coalesce(document->'payout'->>'cadence', 'monthly') "
            "FROM plan_versions WHERE plan_id = ANY($1::text[])", plans):
        cadences.setdefault(r[0], []).append((r[1], r[2]))
    return due_runs([
        Schedulable(r[0], tuple(cadences.get(r[1], ())), r[2].astimezone(UTC).date(),
                    date.fromisoformat(r[3]) if r[3] else None)
        for r in rows if r[2] is not None], today)
