"""Statements: a partner's month, as JSON (default), CSV (Accept: text/csv) or HTML (text/html)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse

from services.gateway.deps import PartnerIdPath, StatementsReader, visible_partner
from services.gateway.read_cache import Rendered, etag_matches
from services.gateway.reads import Reads
from services.gateway.statement_formats import statement_html
from trailpay.core.statements import month_bounds

router = APIRouter(prefix="/v1/partners", tags=["statements"])

JSON, CSV, HTML = "application/json", "text/csv", "text/html"


Month = Annotated[str, Path(pattern=r"^(19[0-9]{2}|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])$",
                            examples=["2026-03"], description="YYYY-MM, years 1900 to 2200")]

OFFERS = {JSON: JSON, "application/*": JSON, CSV: CSV, HTML: HTML, "application/xhtml+xml": HTML}


def negotiate(accept: str) -> str:
    """The named format with the highest q (the first on a tie); JSON for */* or nothing."""
    best, best_q = JSON, Decimal(0)
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = Decimal(1)
        for param in params:
            if param.startswith("q="):
                try:
                    q = Decimal(param[2:])
                except ArithmeticError:  # decimal.InvalidOperation
                    q = Decimal(0)
        offer = OFFERS.get(media.lower())
        if offer is not None and q > best_q:
            best, best_q = offer, q
    return best


def cached(if_none_match: str | None, item: Rendered, media_type: str,
           headers: dict[str, str] | None = None) -> Response:
    """The cached bytes, or 304 when the client already holds them (If-None-Match).
    The routes and the hot reads (hot_reads.py) both answer with this."""
    h = {"ETag": item.etag, "Vary": "Accept", "Cache-Control": "private, no-cache",
         **(headers or {})}
    if etag_matches(if_none_match, item.etag):
        return Response(status_code=304, headers=h)
    return Response(item.body, media_type=media_type, headers=h)


@router.get("/{partner_id}/statements/{month}", operation_id="getStatement",
            summary="A partner's statement for a month (JSON, CSV or HTML by Accept)",
            responses={200: {"content": {JSON: {}, CSV: {}, HTML: {}}}, 304: {}})
async def get_statement(partner_id: PartnerIdPath, month: Month, principal: StatementsReader,
                        request: Request) -> Response:
    visible_partner(principal, partner_id)
    reads: Reads = request.app.state.reads
    try:
        month_bounds(month)
    except ValueError as exc:
        raise HTTPException(422, f"month: {exc}") from None
    kind = negotiate(request.headers.get("accept", ""))
    item = await (reads.statement_csv if kind == CSV else reads.statement)(partner_id, month)
    if item is None:
        raise HTTPException(404, f"partner {partner_id} not found")
    if kind == CSV:
        name = f"statement-{partner_id}-{month}"
        return cached(request.headers.get("if-none-match"), item, "text/csv; charset=utf-8",
                      {"Content-Disposition": f'inline; filename="{name}.csv"'})
    if kind == HTML:  # carries the time it was generated: rendered each time
        return HTMLResponse(statement_html(orjson.loads(item.body)), headers={"Vary": "Accept"})
    return cached(request.headers.get("if-none-match"), item, JSON)
