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
from trailpay.core.statements import Balances, Statement, StatementLine


class JSONBody(Response):
    """JSON rendered by orjson: the gateway's one JSON response class (problems subclass it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def amount(value: Decimal, currency: str) -> str:
    return f"{round_money(value, currency):f}"


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


def _line_json(ln: StatementLine) -> dict[str, Any]:
    leg = ln.leg
    if leg is None:  # a "hold ended" line: no posting of its own
        return {"date": ln.date.isoformat(), "currency": ln.currency, "bucket": ln.bucket,
                "amount": amount(ln.amount, ln.currency), "explanation": ln.explanation,
                **_NO_POSTING}
    return {
        "date": ln.date.isoformat(), "currency": ln.currency, "bucket": ln.bucket,
        "amount": amount(ln.amount, ln.currency), "explanation": ln.explanation,
        "posting_id": leg.group_id, "event_id": leg.event_id, "event_type": leg.event_type,
        "customer_id": leg.customer_id, "deal_id": leg.deal_id, "rule_id": leg.rule_id,
        "rule_kind": leg.rule_kind, "plan_id": leg.plan_id, "plan_version": leg.plan_version,
        "base": leg.base, "rate": leg.rate, "multiplier": leg.multiplier, "share": leg.share,
        "unrounded": leg.unrounded,
    }


_NO_POSTING = {"posting_id": None, "event_id": None, "event_type": "hold.ended",
               "customer_id": None, "deal_id": None, "rule_id": None, "rule_kind": None,
               "plan_id": None, "plan_version": None, "base": None, "rate": None,
               "multiplier": None, "share": None, "unrounded": None}


def statement_json(st: Statement, payouts: Sequence[PayoutView] = (),
                   disputes: Sequence[DisputeView] = ()) -> dict[str, Any]:
    return {"partner_id": st.partner_id, "month": st.month,
            "opening": balance_list(st.opening), "lines": [_line_json(ln) for ln in st.lines],
            "closing": balance_list(st.closing),
            "payouts": [payout_json(p) for p in payouts],
            "disputes": [dispute_json(d) for d in disputes]}
