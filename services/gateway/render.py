"""JSON shapes the integrators rely on: amounts as strings with minor-unit digits."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from trailpay.core.money import round_money
from trailpay.core.postings import BUCKETS
from trailpay.core.statements import Balances, Statement


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


def statement_json(st: Statement) -> dict[str, Any]:
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
        })
    return {"partner_id": st.partner_id, "month": st.month,
            "opening": balance_list(st.opening), "lines": lines,
            "closing": balance_list(st.closing)}
