"""Disputes on statement lines: open (holds the partner's payouts), read, resolve.

Opening and resolving are commands journaled as dispute.opened / dispute.resolved;
an accepted dispute may post a signed adjustment. A partner-bound key opens and
reads its own partner's disputes only (another partner's answer 404); resolving is
for ops keys (partners:write, not bound to a partner).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import Field

from services.gateway.deps import (
    RequestBody,
    KEY, PARTNER_ID, TEXT, ConnDep, KeyPath, PartnerIdQuery, DisputeOpener, DisputeResolver, ProducerDep, SettingsDep, StatementsReader,
    visible_partner,
)
from services.gateway.limits import DEFAULT, body_limit
from services.gateway.render import amount, dispute_json
from trailpay.adapters import commands, read_models
from trailpay.adapters.read_models import DisputeView
from trailpay.core.facts import DisputeOpened, DisputeResolved
from trailpay.core.money import MINOR_UNITS, MoneyError, parse_decimal, round_money

router = APIRouter(prefix="/v1/disputes", tags=["disputes"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$"


class DisputeIn(RequestBody):
    partner_id: str = Field(**PARTNER_ID)
    posting_id: str = Field(description="The disputed statement line's posting_id", **KEY)
    reason: str = Field(**TEXT)
    dispute_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                   description="Your id for it (a retry with it is idempotent)")


class AdjustmentIn(RequestBody):
    currency: str = Field(pattern="^[A-Z]{3}$")
    amount: str = Field(pattern=r"^-?[0-9]{1,14}(\.[0-9]{1,6})?$",
                        description="Signed decimal string with the currency's minor-unit digits")
    reason: str = Field(**TEXT)


class ResolutionIn(RequestBody):
    outcome: Literal["accepted", "rejected"]
    adjustment: AdjustmentIn | None = None


def _visible(principal, d: DisputeView | None, dispute_id: str) -> DisputeView:
    if d is None or not principal.sees(d.partner_id):
        raise HTTPException(404, f"dispute {dispute_id} not found")
    return d


@router.post("", status_code=202, operation_id="postDispute", openapi_extra=body_limit(DEFAULT),
             responses={200: {"description": "Already opened so: nothing changed"}},
             summary="Dispute a statement line; the partner's payouts are held until resolved")
async def post_dispute(body: DisputeIn, principal: DisputeOpener, conn: ConnDep,
                       producer: ProducerDep, settings: SettingsDep,
                       response: Response) -> dict[str, Any]:
    visible_partner(principal, body.partner_id)
    if not await read_models.partner_exists(conn, body.partner_id):
        raise HTTPException(404, f"partner {body.partner_id} not found")
    if await read_models.posting_owner(conn, body.posting_id) != body.partner_id:
        raise HTTPException(422, f"body.posting_id: no statement line {body.posting_id!r} of "
                                 f"partner {body.partner_id}")
    dispute_id = body.dispute_id or f"dsp-{secrets.token_hex(8)}"
    request = {"partner_id": body.partner_id, "posting_id": body.posting_id, "reason": body.reason}
    known = await read_models.dispute(conn, dispute_id)
    if known is not None:
        if (known.partner_id, known.posting_id, known.reason) != tuple(request.values()):
            raise HTTPException(409, f"dispute {dispute_id} exists with other terms")
        response.status_code = 200
        return dispute_json(known)
    event_id = f"dispute:{dispute_id}:opened"
    event = commands.command_event(event_id, DisputeOpened.type, datetime.now(UTC), {
        **request, "dispute_id": dispute_id, "opened_by": principal.name})
    try:
        await commands.request_once(conn, producer, settings.topic_events, event_id,
                                    body.partner_id, request, event)
    except commands.Contradiction:
        raise HTTPException(409, f"dispute {dispute_id} was requested with other terms") from None
    response.headers["Location"] = f"/v1/disputes/{dispute_id}"
    return {"dispute_id": dispute_id, **request, "status": "open", "opened_by": principal.name}


@router.get("", operation_id="listDisputes",
            summary="Disputes (a partner-bound key: its own partner's only)")
async def list_disputes(
    principal: StatementsReader, conn: ConnDep, partner_id: PartnerIdQuery = None,
    status: Annotated[Literal["open", "accepted", "rejected"] | None, Query()] = None,
) -> dict[str, Any]:
    if partner_id is not None:
        visible_partner(principal, partner_id)
    found = await read_models.disputes(conn, partner_id or principal.partner_id, status)
    return {"items": [dispute_json(d) for d in found]}


@router.get("/{dispute_id}", operation_id="getDispute")
async def get_dispute(dispute_id: KeyPath, principal: StatementsReader,
                      conn: ConnDep) -> dict[str, Any]:
    return dispute_json(_visible(principal, await read_models.dispute(conn, dispute_id),
                                 dispute_id))


def _adjustment(a: AdjustmentIn | None) -> dict[str, str] | None:
    if a is None:
        return None
    if a.currency not in MINOR_UNITS:
        raise HTTPException(422, f"body.adjustment.currency: unknown currency {a.currency!r}")
    try:
        value = parse_decimal(a.amount)
    except MoneyError as exc:
        raise HTTPException(422, f"body.adjustment.amount: {exc}") from None
    if round_money(value, a.currency) != value:
        raise HTTPException(422, f"body.adjustment.amount: {a.currency} has "
                                 f"{MINOR_UNITS[a.currency]} minor-unit digits")
    return {"currency": a.currency, "amount": amount(value, a.currency), "reason": a.reason}


@router.post("/{dispute_id}/resolution", status_code=202, operation_id="postDisputeResolution",
             openapi_extra=body_limit(DEFAULT),
             summary="Accept (optionally with an adjustment) or reject a dispute",
             responses={200: {"description": "already resolved so: nothing changed"},
                        409: {"description": "already resolved otherwise"}})
async def post_resolution(dispute_id: KeyPath, body: ResolutionIn, principal: DisputeResolver,
                          conn: ConnDep, producer: ProducerDep, settings: SettingsDep,
                          response: Response) -> dict[str, Any]:
    d = _visible(principal, await read_models.dispute(conn, dispute_id), dispute_id)
    adjustment = _adjustment(body.adjustment)
    if adjustment is not None and body.outcome != "accepted":
        raise HTTPException(422, "body.adjustment: only an accepted dispute posts an adjustment")
    if d.status != "open":
        earlier = {k: v for k, v in (d.adjustment or {}).items() if k != "posting_id"} or None
        if (d.status, earlier) == (body.outcome, adjustment):
            response.status_code = 200
            return {**dispute_json(d), "changed": False}
        raise HTTPException(409, f"dispute {dispute_id} is already {d.status}")
    request = {"outcome": body.outcome, "adjustment": adjustment}
    data: dict[str, Any] = {"partner_id": d.partner_id, "dispute_id": dispute_id,
                            "outcome": body.outcome, "resolved_by": principal.name}
    if adjustment is not None:
        data.update(adjustment_currency=adjustment["currency"],
                    adjustment_amount=adjustment["amount"], adjustment_reason=adjustment["reason"])
    event_id = f"dispute:{dispute_id}:resolved"
    event = commands.command_event(event_id, DisputeResolved.type, datetime.now(UTC), data)
    try:
        await commands.request_once(conn, producer, settings.topic_events, event_id,
                                    d.partner_id, request, event)
    except commands.Contradiction:
        raise HTTPException(409, f"dispute {dispute_id} already has another resolution on its "
                                 "way") from None
    return {**dispute_json(d), "requested": body.outcome, "adjustment": adjustment,
            "changed": True}
