"""Statements: a partner's month, as JSON (default), CSV (Accept: text/csv) or HTML (text/html)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from services.gateway.deps import ConnDep, StatementsReader, visible_partner
from services.gateway.render import JSONBody, statement_json
from services.gateway.statement_formats import statement_csv, statement_html
from trailpay.adapters import read_models

router = APIRouter(prefix="/v1/partners", tags=["statements"])

JSON, CSV, HTML = "application/json", "text/csv", "text/html"


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


@router.get("/{partner_id}/statements/{month}", operation_id="getStatement",
            summary="A partner's statement for a month (JSON, CSV or HTML by Accept)",
            responses={200: {"content": {JSON: {}, CSV: {}, HTML: {}}}})
async def get_statement(partner_id: str, month: str, principal: StatementsReader, conn: ConnDep,
                        request: Request) -> Response:
    visible_partner(principal, partner_id)
    if not await read_models.partner_exists(conn, partner_id):
        raise HTTPException(404, f"partner {partner_id} not found")
    try:
        st = await read_models.statement(conn, partner_id, month)
    except ValueError as exc:
        raise HTTPException(422, f"month: {exc}") from None
    payouts, disputes = await read_models.statement_extras(conn, partner_id, month)
    doc = statement_json(st, payouts, disputes)
    kind = negotiate(request.headers.get("accept", ""))
    name = f"statement-{partner_id}-{month}"
    if kind == CSV:
        return Response(statement_csv(doc), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="{name}.csv"',
                                 "Vary": "Accept"})
    if kind == HTML:
        return HTMLResponse(statement_html(doc), headers={"Vary": "Accept"})
    return JSONBody(doc, headers={"Vary": "Accept"})
