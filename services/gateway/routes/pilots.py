"""Pilots (A/B): define one (journaled; the treatment arm really enrolled on its plan for the
period), read it, its report (real against shadow per arm, the arms' metrics and their
differences; JSON or an HTML page), and roll the treatment out."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, model_validator

from services.gateway.deps import (
    KEY, ConnDep, EngineDep, PilotsReader, PilotsWriter, SettingsDep,
)
from services.gateway import pilot_report
from services.gateway.limits import KiB, body_limit
from services.gateway.render import JSONBody
from services.gateway.routes.simulations import workers
from services.gateway.routes.statements import HTML, JSON, negotiate
from trailpay.adapters import pilot_store, plan_store
from trailpay.core.pilots import CONTROL, TREATMENT

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
            summary="Per arm: revenue, cost real and shadow, renewal, churn, expansion, time "
                    "to first value, scores; every difference with its 95% interval "
                    "(JSON, or HTML with Accept: text/html)",
            responses={200: {"content": {JSON: {}, HTML: {}}}})
async def get_report(pilot_id: PilotId, _: PilotsReader, conn: ConnDep, engine: EngineDep,
                     settings: SettingsDep, request: Request) -> Response:
    pilot = await _pilot(conn, pilot_id)
    doc = await pilot_report.report(engine, settings.asyncpg_dsn, pilot, workers())
    if negotiate(request.headers.get("accept", "")) == HTML:
        return HTMLResponse(pilot_report.report_html(doc, pilot), headers={"Vary": "Accept"})
    return JSONBody(doc, headers={"Vary": "Accept"})


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


