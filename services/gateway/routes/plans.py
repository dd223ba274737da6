"""Plans: publish an immutable version (JSON or YAML), read a plan's versions, its
explainer (HTML, Markdown or JSON) and its change log (JSON or HTML)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from services.gateway import plan_pages
from services.gateway.deps import PARTNER_ID, Principal
from services.gateway.render import JSONBody

from services.gateway.limits import body_limit
from services.gateway.deps import ConnDep, PlansWriter, ProducerDep, SettingsDep, StatementsReader
from trailpay.adapters import commands, plan_store
from trailpay.adapters.plan_documents import PLAN_MAX_BYTES, read_plan_document
from trailpay.core.explainer import ExplainerError, explain
from trailpay.core.plan_changes import diff, terms_for
from trailpay.core.plans import parse_plan

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
        published = await plan_store.publish_plan(conn, doc, retroactive,
                                                  settings.topic_notifications)
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


PartnerType = Annotated[str | None, Query(**PARTNER_ID, description=(
    "Show the terms of this partner type only. A partner-bound key always sees its own "
    "type's terms; naming another type answers 404"))]
OFFERS = {"text/html": "html", "application/xhtml+xml": "html", "text/markdown": "markdown",
          "text/x-markdown": "markdown", "application/json": "json"}


def negotiate(accept: str, default: str) -> str:
    """The named format with the highest q (the first on a tie); `default` for */* or none."""
    best, best_q = default, 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        offer = OFFERS.get(media.lower())
        if offer is not None and q > best_q:
            best, best_q = offer, q
    return best


async def partner_type_for(conn: ConnDep, principal: Principal, asked: str | None) -> str | None:
    """The partner type whose terms are shown: a bound key's own, else the one asked for."""
    if principal.partner_id is None:
        return asked
    partner = await plan_store.partner(conn, principal.partner_id)
    if partner is None:
        raise HTTPException(404, f"partner {principal.partner_id} not found")
    if asked is not None and asked != partner.type:
        raise HTTPException(404, f"partner_type: no terms for partner type {asked!r} are "
                                 "visible to this key")
    return partner.type


@router.get("/{plan_id}/versions/{version}/explainer", operation_id="getPlanExplainer",
            summary="A plan version in plain language, with examples the engine computes "
                    "(HTML; Markdown or JSON by Accept)",
            responses={200: {"content": {"text/html": {}, "text/markdown": {},
                                         "application/json": {}}}})
async def get_explainer(plan_id: PlanId, version: Version, principal: StatementsReader,
                        conn: ConnDep, request: Request,
                        partner_type: PartnerType = None) -> Response:
    ptype = await partner_type_for(conn, principal, partner_type)
    view = next((v for v in await plan_store.plan_versions(conn, plan_id)
                 if v.version == version), None)
    if view is None:
        raise HTTPException(404, f"plan {plan_id} has no version {version}")
    try:
        model = explain(parse_plan(view.document), ptype)
    except ExplainerError as exc:
        raise HTTPException(404, f"partner_type: {exc}") from None
    doc = plan_pages.explainer_json(model)
    kind = negotiate(request.headers.get("accept", ""), "html")
    if kind == "json":
        return JSONBody(doc, headers={"Vary": "Accept"})
    if kind == "markdown":
        return Response(plan_pages.explainer_markdown(doc),
                        media_type="text/markdown; charset=utf-8", headers={"Vary": "Accept"})
    return HTMLResponse(plan_pages.explainer_html(doc), headers={"Vary": "Accept"})


@router.get("/{plan_id}/changes", operation_id="getPlanChanges",
            summary="What changed between two versions of a plan, version by version "
                    "(JSON; HTML by Accept)",
            responses={200: {"content": {"application/json": {}, "text/html": {}}}})
async def get_changes(plan_id: PlanId, principal: StatementsReader, conn: ConnDep,
                      request: Request,
                      frm: Annotated[int | None, Query(alias="from", ge=1, le=2**31 - 1,
                                                       description="default: the version "
                                                       "before `to`")] = None,
                      to: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                      description="default: the latest")] = None,
                      partner_type: PartnerType = None) -> Response:
    ptype = await partner_type_for(conn, principal, partner_type)
    views = await plan_store.plan_versions(conn, plan_id)
    if not views:
        raise HTTPException(404, f"plan {plan_id} not found")
    numbers = [v.version for v in views]
    to = numbers[-1] if to is None else to
    if to not in numbers:
        raise HTTPException(404, f"to: plan {plan_id} has no version {to}")
    if frm is None:
        earlier = [n for n in numbers if n < to]
        frm = earlier[-1] if earlier else to
    if frm not in numbers:
        raise HTTPException(404, f"from: plan {plan_id} has no version {frm}")
    if frm > to:
        raise HTTPException(422, f"from: must not be after to ({frm} > {to})")
    chosen = [v for v in views if frm <= v.version <= to]
    plans = [terms_for(parse_plan(v.document), ptype) for v in chosen]
    steps = [plan_pages.step_json(a.version, b.version, b.effective_from.isoformat(),
                                  v.retroactive, v.rerated_facts, v.published_at, diff(a, b))
             for a, b, v in zip(plans, plans[1:], chosen[1:], strict=False)]
    doc = {"plan_id": plan_id, "from": frm, "to": to, "partner_type": ptype, "steps": steps}
    if negotiate(request.headers.get("accept", ""), "json") == "html":
        return HTMLResponse(plan_pages.changes_html(doc), headers={"Vary": "Accept"})
    return JSONBody(doc, headers={"Vary": "Accept"})
