"""What-if simulations: a candidate plan replayed over the recorded facts, run as a job.

POST answers 202 with a Location at once; the replay runs in this process (its fold in
worker processes over partner shards when there are many entries) and writes only to the
simulation tables. GET gives the status, the progress and, when done, the figures: JSON,
or CSV with `Accept: text/csv`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from services.gateway.deps import (
    KEY, PARTNER_ID, ConnDep, EngineDep, KeyPath, SettingsDep, SimulationsReader,
    SimulationsWriter,
)
from services.gateway.limits import KiB, body_limit
from services.gateway.render import JSONBody
from trailpay.adapters import simulation_store
from trailpay.adapters.fastjson import dumps
from trailpay.adapters.plan_documents import read_plan_document
from trailpay.core.plans import PlanError, parse_plan
from trailpay.core.whatif import summary

router = APIRouter(prefix="/v1/simulations", tags=["simulations"])


class SimulationIn(BaseModel):
    candidate: dict[str, Any] | str = Field(
        description="The candidate plan version: a plan document (object), or its YAML text; "
                    "validated exactly as a published plan")
    from_: date | None = Field(None, alias="from", description="First day (default: all "
                               "history)")
    to: date | None = Field(None, description="Last day, included (default: all history)")
    partners: list[str] | None = Field(None, max_length=10_000, description="Partner ids "
                                       "(default: those enrolled on the candidate's plan)")
    type: str | None = Field(None, description="Or every partner of this type", **KEY)

    model_config = {"populate_by_name": True}


def candidate_of(value: dict[str, Any] | str) -> tuple[dict[str, Any], Any]:
    """(document, PlanVersion), checked like a published plan; PlanError paths say candidate."""
    body, kind = ((value.encode(), "application/yaml") if isinstance(value, str)
                  else (dumps(value), "application/json"))
    try:
        doc = read_plan_document(body, kind)
        return doc, parse_plan(doc)
    except PlanError as exc:
        path = exc.path if exc.path.startswith("(") else f"candidate.{exc.path}"
        raise PlanError(path, exc.why) from None


def start_job(request: Request, job: Any) -> None:
    """Keep a reference to a running job (the event loop holds tasks weakly)."""
    jobs: set = request.app.state.jobs
    task = asyncio.create_task(job)
    jobs.add(task)
    task.add_done_callback(jobs.discard)
    # A failed job is recorded in its row (status failed, the error); retrieving the
    # exception here keeps asyncio from logging it again as never retrieved.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


@router.post("", operation_id="postSimulation", status_code=202,
             summary="Replay the recorded facts under a candidate plan (a job)",
             responses={202: {"description": "Queued; poll the Location"}},
             openapi_extra=body_limit(512 * KiB))
async def post_simulation(body: SimulationIn, request: Request, _: SimulationsWriter,
                          conn: ConnDep, engine: EngineDep, settings: SettingsDep,
                          response: Response) -> dict[str, Any]:
    for p in body.partners or ():
        if not p or len(p) > PARTNER_ID["max_length"]:
            raise HTTPException(422, "partners: each must be a partner id of 1 to 128 "
                                     "characters")
    doc, candidate = candidate_of(body.candidate)
    start, end = simulation_store.period(body.from_, body.to)
    types = await simulation_store.chosen_partners(conn, body.partners, body.type,
                                                   candidate.plan_id)
    simulation_id = f"sim-{secrets.token_hex(8)}"
    request_doc = {"candidate": doc, "from": body.from_, "to": body.to,
                   "partners": sorted(types), "type": body.type}
    await simulation_store.create(conn, simulation_id, "whatif", request_doc)
    await conn.commit()  # the job and the poller must see the row
    start_job(request, simulation_store.execute(
        engine, settings.asyncpg_dsn, simulation_id, {p: candidate for p in types}, types,
        start, end, workers()))
    href = f"/v1/simulations/{simulation_id}"
    response.headers["Location"] = href
    return {"simulation_id": simulation_id, "status": "queued", "href": href,
            "partners": len(types)}


def view_json(v: simulation_store.SimulationView) -> dict[str, Any]:
    total, done = v.entries_total, v.entries_done
    grouped: dict[str, list] = {"partner": [], "type": [], "total": []}
    for item in summary(v.rows):
        grouped[item["level"]].append({
            "key": item["key"], "currency": item["currency"], "cost_share": item["cost_share"],
            "figures": item["figures"]})
    return {
        "simulation_id": v.simulation_id, "kind": v.kind, "pilot_id": v.pilot_id,
        "status": v.status, "error": v.error,
        "progress": {"entries_total": total, "entries_done": done,
                     "fraction": round(done / total, 4) if total else (
                         1.0 if v.status == "done" else 0.0)},
        "request": {k: val for k, val in v.request.items() if k != "candidate"}
        | {"candidate": {k: v.request.get("candidate", {}).get(k)
                         for k in ("plan_id", "version", "effective_from")}},
        "applied": v.applied, "refused": v.refused, "seconds": v.seconds,
        "created_at": v.created_at, "finished_at": v.finished_at,
        "result": {"partners": grouped["partner"], "types": grouped["type"],
                   "total": grouped["total"]} if v.status == "done" else None,
    }


def view_csv(v: simulation_store.SimulationView) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["level", "key", "currency", "figure", "actual", "candidate", "difference"])
    for level, key, cur, fig, a, b in v.rows:
        w.writerow([level, key, cur, fig, f"{a:f}", f"{b:f}", f"{b - a:f}"])
    return out.getvalue()


@router.get("/{simulation_id}", operation_id="getSimulation",
            responses={200: {"content": {"text/csv": {}}}})
async def get_simulation(simulation_id: KeyPath, request: Request, _: SimulationsReader,
                         conn: ConnDep) -> Response:
    v = await simulation_store.read(conn, simulation_id)
    if v is None:
        raise HTTPException(404, f"simulation {simulation_id} not found")
    if "text/csv" in request.headers.get("accept", ""):
        if v.status != "done":
            raise HTTPException(409, f"simulation {simulation_id} is {v.status}: its figures "
                                     "are not ready")
        return Response(view_csv(v), media_type="text/csv; charset=utf-8")
    return JSONBody(jsonable(view_json(v)))


def jsonable(value: Any) -> Any:
    """Decimals as strings (amounts keep their minor-unit digits), dates ISO."""
    import orjson

    return orjson.loads(dumps(value))
