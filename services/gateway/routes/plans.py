"""Plans: publish an immutable version (JSON or YAML), read a plan's versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from services.gateway.limits import body_limit
from services.gateway.deps import ConnDep, PlansWriter, ProducerDep, SettingsDep, StatementsReader
from trailpay.adapters import commands, plan_store
from trailpay.adapters.plan_documents import PLAN_MAX_BYTES, read_plan_document

router = APIRouter(prefix="/v1/plans", tags=["plans"])

PlanId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                             description="as schemas/plan.json spells a plan_id")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.put("/{plan_id}/versions/{version}", operation_id="putPlanVersion",
            summary="Publish a plan version (application/json or application/yaml)",
            responses={200: {"description": "Already published with this document"},
                       201: {"description": "Published"}},
            openapi_extra=body_limit(PLAN_MAX_BYTES, requestBody={"required": True, "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}}}}))
async def put_plan_version(plan_id: PlanId, version: Version, request: Request, _: PlansWriter,
                           conn: ConnDep, response: Response, producer: ProducerDep,
                           settings: SettingsDep, retroactive: bool = Query(
                               False, description="Re-rate facts already recorded in the "
                               "version's period (posted as corrections); without it, a "
                               "version that would re-rate any answers 409")) -> dict[str, Any]:
    doc = read_plan_document(await request.body(), request.headers.get("content-type", ""))
    if doc.get("plan_id") != plan_id:
        raise HTTPException(422, "plan_id: must equal the plan_id in the path")
    if doc.get("version") != version:
        raise HTTPException(422, "version: must equal the version in the path")
    try:
        published = await plan_store.publish_plan(conn, doc, retroactive)
    except plan_store.RetroactiveNeeded as exc:
        raise HTTPException(409, (
            f"retroactive: version {version} applies from {doc.get('effective_from')} and would "
            f"re-rate {exc.facts} recorded facts of {exc.partners} partners; publish it with "
            "?retroactive=true to re-rate them (the differences are posted as corrections)")
        ) from None
    if published.rerated:
        # Produced before the answer (the accrual waits until the version it names is
        # committed). Asking again (the same document, retroactive) sends them again:
        # they are idempotent.
        await commands.send(producer, settings.topic_events,
                            plan_store.rerate_events(published.plan, published.rerated))
    plan = published.plan
    response.status_code = 201 if published.created else 200
    return {"plan_id": plan.plan_id, "version": plan.version,
            "effective_from": plan.effective_from.isoformat(), "created": published.created,
            "rerated_facts": sum(published.rerated.values()),
            "rerated_partners": len(published.rerated)}


@router.get("/{plan_id}", operation_id="getPlan")
async def get_plan(plan_id: PlanId, _: StatementsReader, conn: ConnDep) -> dict[str, Any]:
    versions = await plan_store.plan_versions(conn, plan_id)
    if not versions:
        raise HTTPException(404, f"plan {plan_id} not found")
    return {"plan_id": plan_id, "versions": [
        {"version": v.version, "effective_from": v.effective_from.isoformat(),
         "journal_seq": v.journal_seq, "document": v.document} for v in versions]}
