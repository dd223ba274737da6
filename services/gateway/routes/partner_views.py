"""What a partner looks at: its forecast (JSON) and its dashboard (HTML). A partner-bound
key reads its own; another partner's answers 404."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from services.gateway import programme_views
from services.gateway.deps import ConnDep, PartnerIdPath, StatementsReader, visible_partner
from services.gateway.render import JSONBody, dispute_json
from services.gateway.routes.statements import HTML
from trailpay.adapters import read_models

router = APIRouter(prefix="/v1/partners", tags=["partners"])

Months = Annotated[int, Query(ge=1, le=60, description="Calendar months from as_of's month")]
Churn = Annotated[str | None, Query(
    pattern=r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$", examples=["0.12"],
    description="Annual churn to assume, 0 to 1 (default: observed for the partner's type)")]
AsOf = Annotated[date | None, Query(description="Forecast from this day (default: today)")]


async def _forecast(conn: ConnDep, partner_id: str, as_of: date, months: int,
                    churn_rate: str | None) -> dict:
    got = await programme_views.partner_forecast(
        conn, partner_id, as_of, months, Decimal(churn_rate) if churn_rate else None)
    if got is None:
        raise HTTPException(404, f"partner {partner_id} not found")
    return programme_views.forecast_json(*got)


@router.get("/{partner_id}/forecast", operation_id="getForecast",
            summary="Expected commissions per month, with a low/expected/high band")
async def get_forecast(partner_id: PartnerIdPath, principal: StatementsReader, conn: ConnDep,
                       months: Months = 12, churn_rate: Churn = None,
                       as_of: AsOf = None) -> JSONBody:
    visible_partner(principal, partner_id)
    return JSONBody(await _forecast(conn, partner_id, as_of or datetime.now(UTC).date(),
                                    months, churn_rate))


@router.get("/{partner_id}/dashboard", operation_id="getPartnerDashboard",
            response_class=HTMLResponse, responses={200: {"content": {HTML: {}}}},
            summary="Earnings by month, balances, vesting deadlines, forecast, disputes (HTML)")
async def get_dashboard(partner_id: PartnerIdPath, principal: StatementsReader, conn: ConnDep,
                        request: Request, churn_rate: Churn = None,
                        as_of: AsOf = None) -> HTMLResponse:
    visible_partner(principal, partner_id)
    today = as_of or datetime.now(UTC).date()
    fc = await _forecast(conn, partner_id, today, 12, churn_rate)
    item = await request.app.state.reads.balances(partner_id, today)
    if item is None:
        raise HTTPException(404, f"partner {partner_id} not found")
    disputes = [dispute_json(d) for d in
                await read_models.disputes(conn, partner_id, "open")]
    return HTMLResponse(await programme_views.partner_dashboard(
        conn, partner_id, today, orjson.loads(item.body), fc, disputes))
