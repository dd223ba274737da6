"""JSON shapes the integrators rely on: amounts as strings with minor-unit digits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from trailpay.adapters.read_models import DisputeView, PayoutView
import orjson
from fastapi import Response

from trailpay.core.money import round_money
from trailpay.core.postings import BUCKETS
from trailpay.core.statements import Balances, Statement


class JSONBody(Response):
    """JSON rendered by orjson: the gateway's one JSON response class (problems subclass it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def amount(value: Decimal, currency: str) -> str:
    return f"{round_money(value, currency):f}"


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def balance_list(b: Balances) -> list[dict[str, str]]:
    return [{"currency": c, **{k: amount(b[c][k], c) for k in BUCKETS}} for c in sorted(b)]


def balances_json(partner_id: str, as_of: date | None, b: Balances) -> dict[str, Any]:
    return {"partner_id": partner_id,
            "as_of": (as_of or datetime.now(UTC).date()).isoformat(),
            "balances": balance_list(b)}


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def payout_json(p: PayoutView, *, payment: bool = False) -> dict[str, Any]:
    out = {"payout_id": p.payout_id, "run_id": p.run_id, "partner_id": p.partner_id,
           "currency": p.currency, "amount": amount(p.amount, p.currency),
           "as_of": p.as_of.isoformat(), "status": p.status, "reference": p.reference,
           "created_at": _when(p.created_at), "settled_at": _when(p.settled_at)}
    if payment:
        out["payment"] = p.payment
    return out


def dispute_json(d: DisputeView) -> dict[str, Any]:
    return {"dispute_id": d.dispute_id, "partner_id": d.partner_id, "posting_id": d.posting_id,
            "reason": d.reason, "opened_by": d.opened_by, "status": d.status,
            "opened_at": _when(d.opened_at), "resolved_at": _when(d.resolved_at),
            "resolved_by": d.resolved_by, "adjustment": d.adjustment}


def statement_json(st: Statement, payouts: Sequence[PayoutView] = (),
                   disputes: Sequence[DisputeView] = ()) -> dict[str, Any]:
    lines = []
    for ln in st.lines:
        leg = ln.leg
        lines.append({
            "date": ln.date.isoformat(), "currency": ln.currency, "bucket": ln.bucket,
            "amount": amount(ln.amount, ln.currency), "explanation": ln.explanation,
            "posting_id": leg.group_id if leg else None,
            "event_id": leg.event_id if leg else None,
            "event_type": leg.event_type if leg else "hold.ended",
            "customer_id": leg.customer_id if leg else None,
            "deal_id": leg.deal_id if leg else None,
            "rule_id": leg.rule_id if leg else None,
            "rule_kind": leg.rule_kind if leg else None,
            "plan_id": leg.plan_id if leg else None,
            "plan_version": leg.plan_version if leg else None,
            "base": _opt(leg.base) if leg else None,
            "rate": _opt(leg.rate) if leg else None,
            "multiplier": _opt(leg.multiplier) if leg else None,
            "share": _opt(leg.share) if leg else None,
            "unrounded": _opt(leg.unrounded) if leg else None,
        })
    return {"partner_id": st.partner_id, "month": st.month,
            "opening": balance_list(st.opening), "lines": lines,
            "closing": balance_list(st.closing),
            "payouts": [payout_json(p) for p in payouts],
            "disputes": [dispute_json(d) for d in disputes]}
