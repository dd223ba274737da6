"""Partners: enrolment (journaled) and balances (statements: routes/statements.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import Field

from services.gateway.limits import KiB, body_limit
from services.gateway.deps import (
    Day, RequestBody,
    KEY, PARTNER_ID, ConnDep, PartnerIdPath, PartnersWriter, StatementsReader, visible_partner,
)
from services.gateway.routes.statements import cached
from trailpay.adapters import json_values, plan_store

router = APIRouter(prefix="/v1/partners", tags=["partners"])

PARTNER_TYPES = ("reseller", "integrator", "value_added_provider", "referral", "affiliate",
                 "technology")


class PartnerIn(RequestBody):
    partner_id: str | None = Field(default=None, description="Must equal the path id if given",
                                   **PARTNER_ID)
    type: str = Field(examples=["reseller"], **KEY)
    plan_id: str = Field(**KEY)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    payment: dict[str, Any] | None = None


@router.put("/{partner_id}", operation_id="putPartner", summary="Enrol a partner or change its terms",
            responses={201: {"description": "Enrolled, or its terms changed"}},
            openapi_extra=body_limit(256 * KiB))
async def put_partner(partner_id: PartnerIdPath, body: PartnerIn, _: PartnersWriter, conn: ConnDep,
                      response: Response) -> dict[str, Any]:
    if body.partner_id is not None and body.partner_id != partner_id:
        raise HTTPException(422, "body.partner_id must equal the partner_id in the path")
    try:  # NaN, Infinity and 1e400 were stored as null, a 400-digit integer was a 500
        json_values.check(body.overrides, "body.overrides")
        json_values.check(body.payment, "body.payment")
    except json_values.ValueRefused as exc:
        raise HTTPException(422, str(exc)) from None
    changed, seq = await plan_store.enroll_partner(
        conn, partner_id, body.type, body.plan_id, body.overrides, body.payment)
    response.status_code = 201 if changed else 200
    return {"partner_id": partner_id, "type": body.type, "plan_id": body.plan_id,
            "overrides": body.overrides, "payment": body.payment, "journal_seq": seq,
            "changed": changed}


@router.get("/{partner_id}", operation_id="getPartner")
async def get_partner(partner_id: PartnerIdPath, principal: StatementsReader, conn: ConnDep) -> dict[str, Any]:
    visible_partner(principal, partner_id)
    p = await plan_store.partner(conn, partner_id)
    if p is None:
        raise HTTPException(404, f"partner {partner_id} not found")
    return {"partner_id": partner_id, "type": p.type, "plan_id": p.plan_id,
            "overrides": p.overrides, "payment": p.payment,
            "journal_seq": p.journal_seq, "updated_at": p.updated_at.isoformat()}


@router.get("/{partner_id}/balances", operation_id="getBalances", responses={304: {}})
async def get_balances(partner_id: PartnerIdPath, principal: StatementsReader, request: Request,
                       as_of: Annotated[Day | None, Query()] = None) -> Response:
    visible_partner(principal, partner_id)
    item = await request.app.state.reads.balances(partner_id, as_of)
    if item is None:
        raise HTTPException(404, f"partner {partner_id} not found")
    return cached(request.headers.get("if-none-match"), item, "application/json")
