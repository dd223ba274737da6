"""The programme's numbers as the API shows them: economics, forecasts and the two
dashboards. Each page is built from the same JSON document its API answers, so a page
cannot show a number the API does not."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.gateway import charts
from services.gateway.statement_formats import templates
from trailpay.adapters import plan_store, programme_store
from trailpay.adapters.db import Connection
from trailpay.core.fold import fold
from trailpay.core.journal import sort_key
from trailpay.core.money import round_money
from trailpay.core.postings import BUCKETS
from trailpay.core.programme.forecast import Forecast, forecast
from trailpay.core.programme.metrics import (
    PartnerRecord, groups, money_figures, months_between, rate_figures, ratio,
)
from trailpay.core.state import new_state
from trailpay.core.statements import balances_as_of, month_bounds


def jsonable(v: Any) -> Any:
    """Decimals as strings (as the API sends every number that is not a count)."""
    if isinstance(v, Decimal):
        return f"{v:f}"
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, date):
        return v.isoformat()
    return v


# --- economics --------------------------------------------------------------------------------

async def economics(conn: Connection, start: date, through: date, group_by: list[str],
                    plan_id: str | None = None) -> dict[str, Any]:
    """GET /v1/programme/economics: metrics per group over the days start..through (of the
    partners now on one plan, when given)."""
    records = await programme_store.records(conn, start, through + timedelta(days=1),
                                            plan_id=plan_id)
    return economics_doc(records, start, through, group_by, plan_id)


def economics_doc(records: list[PartnerRecord], start: date, through: date,
                  group_by: list[str], plan_id: str | None = None) -> dict[str, Any]:
    end = through + timedelta(days=1)
    out = []
    for g in groups(records, start, end, group_by):
        m = g.metrics
        out.append({"key": g.key, "from": g.start, "to": g.end - timedelta(days=1),
                    **rate_figures(m),
                    "money": {c: money_figures(m, c, g.start, g.end) for c in m.currencies()}})
    return jsonable({"from": start, "to": through, "group_by": group_by, "plan_id": plan_id,
                     "groups": out})


CSV_COLUMNS = ("type", "cohort", "month", "from", "to", "partners", "customers_active",
               "churned", "renewals", "churn_rate", "renewal_rate", "time_to_first_value_days",
               "currency", "revenue_acv", "revenue_expansion", "revenue_renewal", "revenue_usage",
               "revenue_total", "cost_earned", "cost_reversed", "cost_net", "cost_per_revenue",
               "payback_months", "retained_per_commission")


def economics_csv(doc: dict[str, Any]) -> str:
    """One row per group and currency (a group without money: one row, currency empty)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for g in doc["groups"]:
        base = {**g["key"], **{k: g[k] for k in CSV_COLUMNS if k in g}}
        for cur, money in (g["money"] or {"": None}).items():
            row = dict(base, currency=cur)
            if money:
                row.update({f"revenue_{k}": v for k, v in money["revenue"].items()})
                row.update({f"cost_{k}": v for k, v in money["cost"].items()
                            if k != "by_rule_kind"})
                row.update({k: money[k] for k in ("cost_per_revenue", "payback_months",
                                                  "retained_per_commission")})
            w.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
    return out.getvalue()


# --- forecast ---------------------------------------------------------------------------------

async def observed_churn(conn: Connection, partner_type: str, as_of: date) -> dict[str, Any]:
    """The annual churn of the type's customers: churned / active in the year to as_of."""
    start, end = as_of - timedelta(days=364), as_of + timedelta(days=1)
    records = await programme_store.records(conn, start, end, partner_type=partner_type)
    found = groups(records, start, end, ["type"])
    churned = sum(g.metrics.churned for g in found)
    active = sum(g.metrics.active for g in found)
    return {"value": ratio(Decimal(churned), Decimal(active)) or Decimal("0.0000"),
            "source": "observed", "partner_type": partner_type, "from": start, "to": as_of,
            "customers": active, "churned": churned}


async def partner_forecast(conn: Connection, partner_id: str, as_of: date, months: int,
                           churn_rate: Decimal | None) -> tuple[Forecast, dict[str, Any]] | None:
    """The forecast and the churn it assumed; None: no such partner."""
    p = await plan_store.partner(conn, partner_id)
    if p is None:
        return None
    entries = sorted(await programme_store.partner_entries(conn, partner_id, as_of), key=sort_key)
    books = await programme_store.partner_books(conn, partner_id)
    state = fold(new_state(partner_id), entries, books).state
    churn = (await observed_churn(conn, p.type, as_of) if churn_rate is None else
             {"value": churn_rate, "source": "assumed", "partner_type": p.type})
    return forecast(state, books, as_of, months, churn["value"], entries), churn


def forecast_json(f: Forecast, churn: dict[str, Any]) -> dict[str, Any]:
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for m in f.months:
        by_currency.setdefault(m.currency, []).append(
            {"month": m.month, "low": m.low, "expected": m.expected, "high": m.high,
             "components": m.components})
    q = Decimal("0.0001")
    return jsonable({
        "partner_id": f.partner_id, "as_of": f.as_of, "months": f.horizon,
        "churn_rate": churn,
        "currencies": by_currency,
        "renewals": [{"customer_id": p.customer_id, "date": p.on, "currency": p.currency,
                      "arr": round_money(p.base, p.currency), "commission": p.commission,
                      "survival": p.survival.quantize(q), "rules": list(p.rules)}
                     for p in f.projected if p.kind == "recurring"],
        "usage_run_rate": [{"customer_id": p.customer_id, "date": p.on, "currency": p.currency,
                            "revenue": round_money(p.base, p.currency),
                            "commission": p.commission} for p in f.projected
                           if p.kind == "usage"],
        "maturing": [{"date": d, "currency": c, "amount": a} for d, c, a in f.maturing],
        "vesting": [{"customer_id": h.customer_id, "deadline": h.deadline,
                     "currency": h.currency, "held": h.held, "release_on": list(h.release_on),
                     "survival": h.survival.quantize(q)} for h in f.held],
        "not_projected": [{"what": w, "reason": r} for w, r in f.refused],
    })


# --- the partner's dashboard -----------------------------------------------------------------

async def partner_dashboard(conn: Connection, partner_id: str, today: date,
                            balances: dict[str, Any], fc: dict[str, Any],
                            disputes: list[dict[str, Any]]) -> str:
    since = date(today.year - 1, today.month, 1)
    months = [m.strftime("%Y-%m") for m, _ in months_between(since, today + timedelta(days=1))]
    earned: dict[str, dict[str, dict[str, Decimal]]] = {}  # currency -> kind -> month
    for month, cur, kind, amount in await programme_store.earnings(conn, partner_id, since):
        earned.setdefault(cur, {}).setdefault(kind, {})[month.strftime("%Y-%m")] = \
            round_money(amount, cur)
    moves = await programme_store.balance_months(conn, partner_id)
    currencies = sorted(set(earned) | {b["currency"] for b in balances["balances"]})
    sections = []
    first_earned = min((m for kinds in earned.values() for by in kinds.values() for m in by),
                       default=months[-1])
    months = [m for m in months if m >= first_earned]  # from the first month with earnings
    for cur in currencies:
        kinds = earned.get(cur, {})
        none = round_money(Decimal(0), cur)
        table = [{"month": m, "by_kind": {k: kinds[k].get(m, none) for k in sorted(kinds)},
                  "total": sum((kinds[k].get(m, none) for k in kinds), none)}
                 for m in months]
        ends = []
        for m in months:
            last = month_bounds(m)[1]
            rows = [(c, b, on, a) for mo, c, b, on, a in moves if c == cur and mo <= last]
            ends.append(balances_as_of(rows, min(last, today)).get(cur, {}))
        shown = ("held", "pending", "payable", "in_payout", "paid")
        band = fc["currencies"].get(cur, [])
        sections.append({
            "currency": cur, "table": table, "kinds": sorted(kinds),
            "earned_chart": charts.stacked_bars(
                f"Earned per month by rule kind ({cur})", months,
                {k: [row["by_kind"][k] for row in table] for k in sorted(kinds)}),
            "bucket_chart": charts.stacked_bars(
                f"Balances at month end by bucket ({cur})", months,
                {b: [e.get(b, Decimal(0)) for e in ends] for b in shown}),
            "forecast": band,
            "forecast_chart": charts.lines(
                f"Forecast, expected with the low–high band ({cur})", [r["month"] for r in band],
                {"expected": [Decimal(r["expected"]) for r in band]},
                band=([Decimal(r["low"]) for r in band], [Decimal(r["high"]) for r in band]))
            if band else None,
        })
    statement_months = sorted({m for s in sections for row in s["table"] if row["total"]
                               for m in [row["month"]]} | {today.strftime("%Y-%m")}, reverse=True)
    return templates().get_template("partner_dashboard.html").render(
        partner_id=partner_id, today=today, balances=balances["balances"], buckets=BUCKETS,
        sections=sections, forecast=fc, disputes=disputes, statement_months=statement_months,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


# --- the programme dashboard -----------------------------------------------------------------

METRICS = (("renewal_rate", "Renewal rate"), ("churn_rate", "Churn rate"),
           ("time_to_first_value_days", "Time to first value (days)"))
MONEY_METRICS = (("expansion", "Expansion ARR"), ("cost_per_revenue", "Commission cost per "
                                                  "unit of revenue"))


def _series(doc: dict[str, Any], by: str, months: list[str], currency: str | None
            ) -> dict[str, dict[str, list[Decimal | None]]]:
    """metric -> group -> value per month, from an economics document grouped (by, month)."""
    cells: dict[tuple[str, str], dict[str, Any]] = {(g["key"][by], g["key"]["month"]): g
                                                   for g in doc["groups"]}
    names = sorted({k for k, _ in cells})
    out: dict[str, dict[str, list[Decimal | None]]] = {}

    def value(g: dict[str, Any] | None, metric: str) -> Decimal | None:
        if g is None:
            return None
        if metric in dict(METRICS):
            v = g[metric]
        elif currency is None or currency not in g["money"]:
            return None
        elif metric == "expansion":
            v = g["money"][currency]["revenue"]["expansion"]
        else:
            v = g["money"][currency][metric]
        return None if v is None else Decimal(v)

    for metric in [m for m, _ in METRICS] + [m for m, _ in MONEY_METRICS]:
        out[metric] = {n: [value(cells.get((n, mo)), metric) for mo in months] for n in names}
    return out


def programme_dashboard(summary: dict[str, dict[str, Any]], monthly: dict[str, dict[str, Any]],
                        start: date, through: date) -> str:
    """summary: economics by type and by cohort over the window; monthly: the same by
    (type, month) and (cohort, month)."""
    months = [m.strftime("%Y-%m") for m, _ in months_between(start, through + timedelta(days=1))]
    revenue: dict[str, Decimal] = {}
    for g in summary["type"]["groups"]:
        for cur, money in g["money"].items():
            revenue[cur] = revenue.get(cur, Decimal(0)) + Decimal(money["revenue"]["total"])
    currency = max(revenue, key=lambda c: revenue[c]) if revenue else None
    panels = []
    for by in ("type", "cohort"):
        series = _series(monthly[by], by, months, currency)
        chart_list = [(label, charts.lines(f"{label} by {by}", months, series[m]))
                      for m, label in METRICS]
        chart_list += [(f"{label} ({currency})", charts.lines(
            f"{label} by {by} ({currency})", months, series[m])) for m, label in MONEY_METRICS
            if currency]
        panels.append({"by": by, "groups": summary[by]["groups"], "charts": chart_list})
    return templates().get_template("programme_dashboard.html").render(
        start=start, through=through, panels=panels, currency=currency,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
