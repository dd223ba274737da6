"""Payouts: read one; the ERP confirms it paid or failed (journaled as payout.confirmed/failed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from services.gateway.deps import (
    RequestBody,
    KEY, ConnDep, KeyPath, PayablesReader, PayoutsWriter, ProducerDep, SettingsDep, visible_partner,
)
from services.gateway.limits import DEFAULT, body_limit
from services.gateway.render import payout_json
from trailpay.adapters import commands, read_models
from trailpay.core.facts import PayoutConfirmed, PayoutFailed

router = APIRouter(prefix="/v1/payouts", tags=["payouts"])


class ConfirmationIn(RequestBody):
    status: Literal["paid", "failed"]
    reference: str = Field(description="The ERP's payment reference", **KEY)


@router.get("/{payout_id}", operation_id="getPayout")
async def get_payout(payout_id: KeyPath, principal: PayablesReader, conn: ConnDep) -> dict[str, Any]:
    p = await read_models.payout(conn, payout_id)
    if p is None or not principal.sees(p.partner_id):
        raise HTTPException(404, f"payout {payout_id} not found")
    return payout_json(p, payment=True)


@router.post("/{payout_id}/confirmation", status_code=202, operation_id="postPayoutConfirmation",
             openapi_extra=body_limit(DEFAULT),
             summary="The ERP paid the payout, or the payment failed (back to payable)",
             responses={200: {"description": "already confirmed so: nothing changed"},
                        409: {"description": "already confirmed otherwise"}})
async def post_confirmation(payout_id: KeyPath, body: ConfirmationIn, principal: PayoutsWriter,
                            conn: ConnDep, producer: ProducerDep, settings: SettingsDep,
                            response: Response) -> dict[str, Any]:
    p = await read_models.payout(conn, payout_id)
    if p is None:
        raise HTTPException(404, f"payout {payout_id} not found")
    visible_partner(principal, p.partner_id)
    if p.status != "in_payout":
        if (p.status, p.reference) == (body.status, body.reference):
            response.status_code = 200
            return {**payout_json(p), "changed": False}
        raise HTTPException(409, f"payout {payout_id} is already {p.status} (reference "
                                 f"{p.reference!r}); a {body.status} confirmation contradicts it")
    event_id = f"payout-confirmation:{payout_id}"
    type_ = (PayoutConfirmed if body.status == "paid" else PayoutFailed).type
    event = commands.command_event(event_id, type_, datetime.now(UTC), {
        "payout_id": payout_id, "reference": body.reference, "partner_id": p.partner_id})
    try:
        await commands.request_once(conn, producer, settings.topic_events, event_id, p.partner_id,
                                    body.model_dump(), event)
    except commands.Contradiction:
        raise HTTPException(409, f"payout {payout_id} already has another confirmation on its "
                                 "way") from None
    return {**payout_json(p), "status": p.status, "requested": body.status,
            "reference": body.reference, "changed": True}
