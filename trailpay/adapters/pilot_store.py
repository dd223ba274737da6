"""Pilots (A/B): a journaled definition, real enrolment changes for the treatment arm, and
the shadow of each arm under the other arm's plan (the what-if replay, kept apart).

Defining a pilot journals `trailpay.pilot.defined` (definition and arms) and, for each
treatment partner, two enrolment changes through plan_store.enroll_partner: onto the
treatment plan at `starts`, back onto the control plan the day after `ends`. The live
accrual then really pays the treatment arm under the treatment plan for the period, as it
would any enrolment change. The control arm's enrolments are not touched.

The shadow is a simulation (kind `shadow`, id `shadow-<pilot>`): every arm partner
replayed over the pilot's period under the other arm's plan, its "actual" the live
postings. It lives in the simulation tables and is never journaled, posted or paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as clock, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trailpay.adapters import simulation_store
from trailpay.adapters.db import raw
from trailpay.adapters.plan_store import (
    COMMAND_SOURCE, Published, canonical, command_record, enroll_partner, journal_command,
    publish_plan,
)
from trailpay.core.journal import body_hash
from trailpay.core.pilots import CONTROL, TREATMENT, arms as split
from trailpay.core.plans import PlanError, parse_plan


class PilotConflict(Exception):
    """Another definition under this pilot id, or facts already recorded in its period."""


@dataclass(frozen=True, slots=True)
class PilotView:
    pilot_id: str
    definition: dict[str, Any]
    arms: dict[str, str]  # partner -> arm
    journal_seq: int
    rolled_out: dict[str, Any] | None
    created_at: datetime

    @property
    def period(self) -> tuple[datetime, datetime]:
        return simulation_store.period(date.fromisoformat(self.definition["starts"]),
                                       date.fromisoformat(self.definition["ends"]))


def _day(d: date) -> datetime:
    return datetime.combine(d, clock(), UTC)


async def _latest(pg: Any, plan_id: str, field: str) -> dict[str, Any]:
    doc = await pg.fetchval("SELECT document::text FROM plan_versions WHERE plan_id = $1 "
                            "ORDER BY version DESC LIMIT 1", plan_id)
    if doc is None:
        raise PlanError(field, f"no published plan {plan_id!r}")
    return orjson.loads(doc)


async def define(conn: AsyncConnection, pilot_id: str, definition: Mapping[str, Any]
                 ) -> tuple[bool, PilotView]:
    """Define a pilot (created?, view). The same definition again changes nothing; another
    one is a PilotConflict, and so is a period in which the treatment arm already has
    recorded facts (they were accrued under the control plan: a pilot starts from now on)."""
    d = dict(definition)
    existing = await read(conn, pilot_id)
    doc_hash = body_hash(canonical(d))
    if existing is not None:
        if body_hash(canonical(existing.definition)) != doc_hash:
            raise PilotConflict(f"pilot {pilot_id} is already defined otherwise; pilots are "
                                "immutable: define a new one")
        return False, existing
    pg = await raw(conn)
    control, treatment = d["control_plan"], d["treatment_plan"]
    await _latest(pg, control, "control_plan")
    t_plan = parse_plan(await _latest(pg, treatment, "treatment_plan"))
    starts, ends = date.fromisoformat(d["starts"]), date.fromisoformat(d["ends"])
    rows = await pg.fetch("SELECT partner_id, type, overrides::text, payment::text FROM partners "
                          "WHERE plan_id = $1 ORDER BY partner_id", control)
    if not rows:
        raise PlanError("control_plan", f"no partner is enrolled on plan {control!r}")
    assigned = split(pilot_id, [(r[0], r[1]) for r in rows], d["assignment"])
    treated = [r for r in rows if assigned[r[0]] == TREATMENT]
    if not treated:
        raise PlanError("assignment", "puts no partner of the control plan in treatment")
    for r in treated:
        if t_plan.partner_types and r[1] not in t_plan.partner_types:
            raise PlanError("assignment", f"partner {r[0]} is a {r[1]}; plan {treatment} has "
                            f"no terms for that type")
    recorded = await pg.fetchval(
        "SELECT count(*) FROM ledger_entries e JOIN journal j ON j.seq = e.journal_seq "
        "WHERE e.partner_id = ANY($1::text[]) AND j.source <> $2 AND j.effective_at >= $3",
        [r[0] for r in treated], COMMAND_SOURCE, _day(starts))
    if recorded:
        raise PilotConflict(f"starts: the treatment arm already has {recorded} recorded facts "
                            f"dated from {starts}; a pilot applies to facts after it is defined")
    seq = await journal_command(conn, command_record(
        f"pilot:{pilot_id}", "trailpay.pilot.defined", pilot_id,
        {"pilot_id": pilot_id, **d, "arms": assigned}))
    await pg.execute(
        "INSERT INTO pilots (pilot_id, definition, arms, doc_hash, journal_seq) "
        "VALUES ($1, $2::jsonb, $3::jsonb, $4, $5)", pilot_id, canonical(d).decode(),
        canonical(assigned).decode(), doc_hash, seq)
    t_rules = {r.id for r in t_plan.rules}
    for p, type_, overrides, payment in treated:
        ov = orjson.loads(overrides)
        pay = orjson.loads(payment) if payment else None
        await enroll_partner(conn, p, type_, treatment,
                             {k: v for k, v in ov.items() if k in t_rules}, pay, _day(starts))
        await enroll_partner(conn, p, type_, control, ov, pay, _day(ends + timedelta(days=1)))
    view = await read(conn, pilot_id)
    assert view is not None
    return True, view


async def read(conn: AsyncConnection, pilot_id: str) -> PilotView | None:
    pg = await raw(conn)
    r = await pg.fetchrow("SELECT definition::text, arms::text, journal_seq, rolled_out::text, "
                          "created_at FROM pilots WHERE pilot_id = $1", pilot_id)
    if r is None:
        return None
    return PilotView(pilot_id, orjson.loads(r[0]), orjson.loads(r[1]), r[2],
                     orjson.loads(r[3]) if r[3] else None, r[4])


async def shadow(engine: AsyncEngine, dsn: str, pilot: PilotView, workers: int = 2
                 ) -> simulation_store.Outcome:
    """Replay every arm partner over the pilot's period under the other arm's plan."""
    d = pilot.definition
    other = {CONTROL: d["treatment_plan"], TREATMENT: d["control_plan"]}
    plans = {p: other[a] for p, a in pilot.arms.items()}
    async with engine.begin() as conn:
        pg = await raw(conn)
        types = {r[0]: r[1] for r in await pg.fetch(
            "SELECT partner_id, type FROM partners WHERE partner_id = ANY($1::text[])",
            list(plans))}
        sim_id = f"shadow-{pilot.pilot_id}"
        await simulation_store.create(conn, sim_id, "shadow", {"pilot_id": pilot.pilot_id},
                                      pilot.pilot_id)
    start, end = pilot.period
    return await simulation_store.execute(engine, dsn, sim_id, plans, types, start, end,
                                          workers)


@dataclass(frozen=True, slots=True)
class PartnerFigures:
    """One arm partner in one currency: what the pilot report and core.programme.compare
    need per partner (real cost: posted; shadow: under the other arm's plan)."""

    partner_id: str
    arm: str
    currency: str
    revenue: Decimal
    cost: Decimal
    shadow_cost: Decimal


async def arm_figures(conn: AsyncConnection, pilot: PilotView) -> list[PartnerFigures]:
    """Each arm partner's revenue, real and shadow cost in the pilot's period, from its last
    shadow run (shadow() first). Partners with no figures show zeros."""
    v = await simulation_store.read(conn, f"shadow-{pilot.pilot_id}")
    cells: dict[tuple[str, str], dict[str, Decimal]] = {}
    for level, key, cur, fig, actual, candidate in (v.rows if v else []):
        if level != "partner" or fig not in ("cost", "revenue"):
            continue
        cell = cells.setdefault((key, cur), {})
        if fig == "revenue":
            cell["revenue"] = actual
        else:
            cell["cost"], cell["shadow"] = actual, candidate
    out = []
    for p, a in sorted(pilot.arms.items()):
        currencies = sorted({c for k, c in cells if k == p}) or ["USD"]
        for cur in currencies:
            cell = cells.get((p, cur), {})
            z = Decimal("0.00")
            out.append(PartnerFigures(p, a, cur, cell.get("revenue", z), cell.get("cost", z),
                                      cell.get("shadow", z)))
    return out


async def roll_out(conn: AsyncConnection, pilot: PilotView, effective_from: date
                   ) -> Published:
    """Publish the treatment plan's terms as the control plan's next version, for everyone
    on it, through the normal journaled publication (RetroactiveNeeded if it would re-rate
    recorded facts: choose a later effective_from)."""
    pg = await raw(conn)
    d = pilot.definition
    t_doc = await _latest(pg, d["treatment_plan"], "treatment_plan")
    c_doc = await _latest(pg, d["control_plan"], "control_plan")
    doc = {**t_doc, "plan_id": c_doc["plan_id"], "version": c_doc["version"] + 1,
           "effective_from": effective_from.isoformat()}
    if pilot.rolled_out:  # the same rollout again: the version it published
        doc = {**t_doc, "plan_id": c_doc["plan_id"], "version": pilot.rolled_out["version"],
               "effective_from": pilot.rolled_out["effective_from"]}
    published = await publish_plan(conn, doc)
    if published.created:
        await pg.execute("UPDATE pilots SET rolled_out = $2::jsonb WHERE pilot_id = $1",
                         pilot.pilot_id, canonical({"version": doc["version"],
                                                    "effective_from": doc["effective_from"]}
                                                   ).decode())
    return published
