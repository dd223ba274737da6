"""Payout runs: ask for one as of a date (ops, or the accrual's scheduler), read its payouts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from services.gateway.deps import (
    Day, RequestBody,
    PARTNER_ID, ConnDep, KeyPath, PayablesReader, PayoutRunner, ProducerDep, SettingsDep,
)
from services.gateway.limits import DEFAULT, body_limit
from services.gateway.render import payout_json
from trailpay.adapters import payout_runs, read_models
from trailpay.core.payouts import run_id

router = APIRouter(prefix="/v1/payout-runs", tags=["payouts"])


class PayoutRunIn(RequestBody):
    as_of: Day = Field(description="Pay what was payable at the end of this day (UTC)")
    partner_ids: list[Annotated[str, Field(**PARTNER_ID)]] | None = Field(
        default=None, min_length=1, description="Only these partners (default: every partner)")


@router.post("", status_code=202, operation_id="postPayoutRun", openapi_extra=body_limit(DEFAULT),
             summary="Run payouts as of a date: one payout per partner and currency due")
async def post_payout_run(body: PayoutRunIn, _: PayoutRunner, conn: ConnDep,
                          producer: ProducerDep, settings: SettingsDep,
                          response: Response) -> dict[str, Any]:
    if body.as_of > datetime.now(UTC).date():
        raise HTTPException(422, "body.as_of: is in the future; a run pays what is payable now")
    partners = await payout_runs.enrolled(conn, body.partner_ids)
    if body.partner_ids is not None:
        unknown = sorted(set(body.partner_ids) - set(partners))
        if unknown:
            raise HTTPException(422, f"body.partner_ids: not enrolled: {', '.join(unknown)}")
    await payout_runs.request(producer, settings.topic_events, [(p, body.as_of) for p in partners],
                              "http")
    rid = run_id(body.as_of)
    response.headers["Location"] = f"/v1/payout-runs/{rid}"
    return {"run_id": rid, "as_of": body.as_of.isoformat(), "partners": len(partners)}


@router.get("/{run_id}", operation_id="getPayoutRun",
            summary="The payouts a run created so far (a partner-bound key: its own)")
async def get_payout_run(run_id: KeyPath, principal: PayablesReader, conn: ConnDep) -> dict[str, Any]:
    payouts = await read_models.run_payouts(conn, run_id, principal.partner_id)
    return {"run_id": run_id, "payouts": [payout_json(p) for p in payouts]}
