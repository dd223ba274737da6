"""Pilots (A/B): define one (journaled; the treatment arm really enrolled on its plan for the
period), read it, its report (real against shadow per arm), and roll the treatment out."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field, model_validator

from services.gateway.deps import (
    KEY, ConnDep, EngineDep, PilotsReader, PilotsWriter, SettingsDep,
)
from services.gateway.limits import KiB, body_limit
from services.gateway.render import JSONBody
from services.gateway.routes.simulations import jsonable, workers
from trailpay.adapters import pilot_store, plan_store
from trailpay.core.pilots import CONTROL, TREATMENT
from trailpay.core.whatif import cost_share

router = APIRouter(prefix="/v1/pilots", tags=["pilots"])
PilotId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
PlanRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]


class HashSplit(BaseModel):
    ratio: Decimal = Field(gt=0, lt=1, description="The share of partners in treatment")


class Assignment(BaseModel):
    partners: list[Annotated[str, Field(**KEY)]] | None = Field(None, min_length=1,
                                                                 max_length=10_000)
    types: list[Annotated[str, Field(**KEY)]] | None = Field(None, min_length=1, max_length=50)
    hash: HashSplit | None = None

    @model_validator(mode="after")
    def one_kind(self) -> Assignment:
        if sum(x is not None for x in (self.partners, self.types, self.hash)) != 1:
            raise ValueError("give exactly one of partners, types or hash")
        return self


class PilotIn(BaseModel):
    control_plan: PlanRef
    treatment_plan: PlanRef
    assignment: Assignment
    starts: date
    ends: date = Field(description="The last day, included")

    @model_validator(mode="after")
    def ordered(self) -> PilotIn:
        if self.ends < self.starts:
            raise ValueError("ends must not be before starts")
        if self.control_plan == self.treatment_plan:
            raise ValueError("treatment_plan must differ from control_plan")
        return self


def _view(p: pilot_store.PilotView) -> dict[str, Any]:
    members = {a: sorted(k for k, v in p.arms.items() if v == a) for a in (CONTROL, TREATMENT)}
    return {"pilot_id": p.pilot_id, **p.definition, "journal_seq": p.journal_seq,
            "rolled_out": p.rolled_out, "created_at": p.created_at.isoformat(),
            "arms": {a: {"partners": ids, "count": len(ids)} for a, ids in members.items()}}


@router.put("/{pilot_id}", operation_id="putPilot", summary="Define a pilot (A/B)",
            responses={200: {"description": "Already defined so"}, 201: {"description":
                       "Defined: the treatment arm enrolled on its plan for the period"}},
            openapi_extra=body_limit(512 * KiB))
async def put_pilot(pilot_id: PilotId, body: PilotIn, _: PilotsWriter, conn: ConnDep,
                    response: Response) -> Response:
    definition = body.model_dump(mode="json", exclude_none=True)
    definition["assignment"] = body.assignment.model_dump(mode="json", exclude_none=True)
    try:
        created, view = await pilot_store.define(conn, pilot_id, definition)
    except pilot_store.PilotConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return JSONBody(_view(view), status_code=201 if created else 200)


async def _pilot(conn, pilot_id: str) -> pilot_store.PilotView:
    p = await pilot_store.read(conn, pilot_id)
    if p is None:
        raise HTTPException(404, f"pilot {pilot_id} not found")
    return p


@router.get("/{pilot_id}", operation_id="getPilot")
async def get_pilot(pilot_id: PilotId, _: PilotsReader, conn: ConnDep) -> Response:
    return JSONBody(_view(await _pilot(conn, pilot_id)))


@router.get("/{pilot_id}/report", operation_id="getPilotReport",
            summary="Per arm: partners, revenue, commission cost real and shadow")
async def get_report(pilot_id: PilotId, _: PilotsReader, conn: ConnDep, engine: EngineDep,
                     settings: SettingsDep) -> Response:
    pilot = await _pilot(conn, pilot_id)
    outcome = await pilot_store.shadow(engine, settings.asyncpg_dsn, pilot, workers())
    async with engine.connect() as fresh:  # the shadow was committed on its own connections
        figures = await pilot_store.arm_figures(fresh, pilot)
    arms: dict[str, Any] = {}
    for a in (CONTROL, TREATMENT):
        mine = [f for f in figures if f.arm == a]
        per_cur: dict[str, dict[str, Decimal]] = {}
        for f in mine:
            c = per_cur.setdefault(f.currency, {"revenue": Decimal(0), "cost": Decimal(0),
                                                "shadow_cost": Decimal(0)})
            c["revenue"] += f.revenue
            c["cost"] += f.cost
            c["shadow_cost"] += f.shadow_cost
        arms[a] = {
            "plan": pilot.definition["treatment_plan" if a == TREATMENT else "control_plan"],
            "shadow_plan": pilot.definition["control_plan" if a == TREATMENT
                                            else "treatment_plan"],
            "partners": sorted({f.partner_id for f in mine}),
            "totals": [{"currency": cur, "attributed_revenue": v["revenue"],
                        "cost_real": v["cost"], "cost_shadow": v["shadow_cost"],
                        "cost_per_revenue_real": cost_share(v["cost"], v["revenue"]),
                        "cost_per_revenue_shadow": cost_share(v["shadow_cost"], v["revenue"])}
                       for cur, v in sorted(per_cur.items())],
            "per_partner": [{"partner_id": f.partner_id, "currency": f.currency,
                             "attributed_revenue": f.revenue, "cost_real": f.cost,
                             "cost_shadow": f.shadow_cost} for f in mine]}
    return JSONBody(jsonable({
        "pilot_id": pilot_id, "starts": pilot.definition["starts"],
        "ends": pilot.definition["ends"], "shadow_simulation": f"shadow-{pilot_id}",
        "entries": outcome.entries, "arms": arms}))


class RolloutIn(BaseModel):
    effective_from: date | None = Field(None, description="Default: the day after the pilot "
                                        "ends")


@router.post("/{pilot_id}/rollout", operation_id="postPilotRollout",
             summary="Publish the treatment as the control plan's next version, for everyone",
             responses={200: {"description": "Already rolled out"}, 201: {}},
             openapi_extra=body_limit(4 * KiB))
async def post_rollout(pilot_id: PilotId, _: PilotsWriter, conn: ConnDep,
                       body: RolloutIn | None = None) -> Response:
    pilot = await _pilot(conn, pilot_id)
    when = (body.effective_from if body and body.effective_from
            else date.fromisoformat(pilot.definition["ends"]) + timedelta(days=1))
    try:
        published = await pilot_store.roll_out(conn, pilot, when)
    except plan_store.RetroactiveNeeded as exc:
        raise HTTPException(409, f"effective_from: from {when} the version would re-rate "
                                 f"{exc.facts} recorded facts of {exc.partners} partners; "
                                 "choose a later date") from None
    plan = published.plan
    return JSONBody({"pilot_id": pilot_id, "plan_id": plan.plan_id, "version": plan.version,
                     "effective_from": plan.effective_from.isoformat(),
                     "created": published.created},
                    status_code=201 if published.created else 200)


