"""Payables: payouts awaiting payment, for the ERP to pull (cursor-paginated, stable order)."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request

from services.gateway.deps import PartnerIdQuery, PayablesReader, visible_partner
from services.gateway.render import JSONBody, payout_json
from trailpay.adapters.cloudevents import PRINTABLE

router = APIRouter(prefix="/v1/payables", tags=["payouts"])
PRINTABLE_ID = re.compile(PRINTABLE)


def encode_cursor(journal_seq: int, payout_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([journal_seq, payout_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        seq, pid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(seq, int) and -2**63 <= seq < 2**63 and isinstance(pid, str) \
                and PRINTABLE_ID.fullmatch(pid):
            return seq, pid
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise HTTPException(422, "cursor: not a cursor this API returned")


@router.get("", operation_id="listPayables",
            summary="Payouts awaiting payment, oldest run first, with payment details")
async def list_payables(
    principal: PayablesReader, request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    partner_id: PartnerIdQuery = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
) -> JSONBody:
    if partner_id is not None:
        visible_partner(principal, partner_id)
    partner_id = partner_id or principal.partner_id
    after = decode_cursor(cursor) if cursor else None
    rows = await request.app.state.reads.payables(after, limit + 1, partner_id, currency)
    page = rows[:limit]
    items: list[dict[str, Any]] = [payout_json(p, payment=True) for p in page]
    more = len(rows) > limit
    return JSONBody({"items": items, "next_cursor": encode_cursor(
        page[-1].journal_seq, page[-1].payout_id) if more else None})
