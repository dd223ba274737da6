"""The programme as partner ops see it: economics by type, cohort and month (JSON, CSV)
and the programme dashboard (HTML). Ops work: an unbound key with partners:write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from services.gateway import programme_views
from services.gateway.deps import KEY, ConnDep, Principal, require_unbound
from services.gateway.render import JSONBody
from services.gateway.routes.statements import CSV, HTML, JSON, negotiate
from trailpay.adapters import programme_store
from trailpay.core.programme.metrics import GROUPINGS

router = APIRouter(prefix="/v1/programme", tags=["programme"])

ProgrammeReader = Annotated[Principal, Depends(require_unbound(
    "partners:write", "read the programme's economics"))]
MAX_DAYS = 366 * 10


def window(start: date | None, through: date | None) -> tuple[date, date]:
    """The days asked for (default: the year to today), checked."""
    through = through or datetime.now(UTC).date()
    start = start or through - timedelta(days=364)
    if start > through:
        raise HTTPException(422, "from: must be on or before to")
    if (through - start).days > MAX_DAYS:
        raise HTTPException(422, f"from: at most {MAX_DAYS} days before to")
    return start, through


def grouping(text: str) -> list[str]:
    chosen = [g.strip() for g in text.split(",") if g.strip()]
    bad = [g for g in chosen if g not in GROUPINGS]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        raise HTTPException(422, f"group_by: give one or more of {', '.join(GROUPINGS)}, "
                                 "comma-separated, each once")
    return chosen


From = Annotated[date | None, Query(alias="from", description="First day (default: a year "
                                                               "before `to`)")]
To = Annotated[date | None, Query(description="Last day, included (default: today)")]
PlanId = Annotated[str | None, Query(description="Only the partners now on this plan", **KEY)]


@router.get("/economics", operation_id="getProgrammeEconomics",
            summary="Attributed revenue against commission cost, by type, cohort or month",
            responses={200: {"content": {JSON: {}, CSV: {}}}})
async def get_economics(_: ProgrammeReader, conn: ConnDep, request: Request,
                        start: From = None, to: To = None,
                        group_by: Annotated[str, Query(max_length=64, examples=["type"],
                                                       description="type, cohort, month, "
                                                                   "or several: type,month")
                                            ] = "type", plan_id: PlanId = None) -> Response:
    start, through = window(start, to)
    doc = await programme_views.economics(conn, start, through, grouping(group_by), plan_id)
    if negotiate(request.headers.get("accept", "")) == CSV:
        return Response(programme_views.economics_csv(doc), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'inline; filename="economics.csv"',
                                 "Vary": "Accept"})
    return JSONBody(doc, headers={"Vary": "Accept"})


@router.get("/dashboard", operation_id="getProgrammeDashboard", response_class=HTMLResponse,
            summary="Renewal, churn, time to first value, expansion and cost per revenue, by "
                    "type and cohort, month by month (HTML)",
            responses={200: {"content": {HTML: {}}}})
async def get_dashboard(_: ProgrammeReader, conn: ConnDep, start: From = None,
                        to: To = None, plan_id: PlanId = None) -> HTMLResponse:
    start, through = window(start, to)
    records = await programme_store.records(conn, start, through + timedelta(days=1),
                                            plan_id=plan_id)
    doc = programme_views.economics_doc
    summary = {by: doc(records, start, through, [by], plan_id) for by in ("type", "cohort")}
    monthly = {by: doc(records, start, through, [by, "month"], plan_id)
               for by in ("type", "cohort")}
    return HTMLResponse(programme_views.programme_dashboard(summary, monthly, start, through))
