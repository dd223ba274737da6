"""The pilot report: per arm, the money of the shadow run (real cost against the other arm's
plan) and the programme metrics over the pilot's period; between the arms, every
difference (treatment − control) with its 95% interval and sample sizes, or "not enough
data". JSON for the API, and the same document as an HTML page (Accept: text/html), so
the page cannot show a number the API does not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.gateway import charts
from services.gateway.routes.simulations import jsonable
from services.gateway.statement_formats import templates
from trailpay.adapters import pilot_store, programme_store
from trailpay.adapters.db import Engine
from trailpay.core.pilots import CONTROL, TREATMENT
from trailpay.core.programme.compare import compare_currencies, difference_json
from trailpay.core.programme.metrics import (
    PartnerMetrics, PartnerRecord, money_figures, partner_metrics, rate_figures,
)
from trailpay.core.whatif import cost_share

ARMS = (CONTROL, TREATMENT)


def period(pilot: pilot_store.PilotView) -> tuple[date, date]:
    """The pilot's days as [start, end): `ends` is its last day, included."""
    d = pilot.definition
    return date.fromisoformat(d["starts"]), date.fromisoformat(d["ends"]) + timedelta(days=1)


async def report(engine: Engine, dsn: str, pilot: pilot_store.PilotView, workers: int
                 ) -> dict[str, Any]:
    """Run the shadow again (the facts recorded so far), then read both arms' figures."""
    outcome = await pilot_store.shadow(engine, dsn, pilot, workers)
    start, end = period(pilot)
    async with engine.connect() as fresh:  # the shadow was committed on its own connections
        figures = await pilot_store.arm_figures(fresh, pilot)
        records = await programme_store.records(fresh, start, end,
                                                partner_ids=sorted(pilot.arms))
    return report_doc(pilot, outcome.entries, figures, records)


def _shadow_money(pilot: pilot_store.PilotView, arm: str,
                  mine: list[pilot_store.PartnerFigures]) -> dict[str, Any]:
    d = pilot.definition
    per_cur: dict[str, dict[str, Decimal]] = {}
    for f in mine:
        c = per_cur.setdefault(f.currency, {"revenue": Decimal(0), "cost": Decimal(0),
                                            "shadow_cost": Decimal(0)})
        c["revenue"] += f.revenue
        c["cost"] += f.cost
        c["shadow_cost"] += f.shadow_cost
    return {
        "plan": d["treatment_plan" if arm == TREATMENT else "control_plan"],
        "shadow_plan": d["control_plan" if arm == TREATMENT else "treatment_plan"],
        "partners": sorted({f.partner_id for f in mine}),
        "totals": [{"currency": cur, "attributed_revenue": v["revenue"],
                    "cost_real": v["cost"], "cost_shadow": v["shadow_cost"],
                    "cost_per_revenue_real": cost_share(v["cost"], v["revenue"]),
                    "cost_per_revenue_shadow": cost_share(v["shadow_cost"], v["revenue"])}
                   for cur, v in sorted(per_cur.items())],
        "per_partner": [{"partner_id": f.partner_id, "currency": f.currency,
                         "attributed_revenue": f.revenue, "cost_real": f.cost,
                         "cost_shadow": f.shadow_cost} for f in mine]}


def report_doc(pilot: pilot_store.PilotView, entries: int,
               figures: list[pilot_store.PartnerFigures],
               records: list[PartnerRecord]) -> dict[str, Any]:
    start, end = period(pilot)
    per_partner = {r.partner_id: partner_metrics(r, start, end) for r in records}
    by_arm: dict[str, list[PartnerMetrics]] = {a: [] for a in ARMS}
    for p, a in sorted(pilot.arms.items()):
        if p in per_partner:
            by_arm[a].append(per_partner[p])
    arms: dict[str, Any] = {}
    for a in ARMS:
        group = PartnerMetrics("", "", "", partners=0)
        for m in by_arm[a]:
            group.add(m)
        arms[a] = {**_shadow_money(pilot, a, [f for f in figures if f.arm == a]),
                   "metrics": rate_figures(group),
                   "money": {c: money_figures(group, c, start, end)
                             for c in group.currencies()}}
    differences = compare_currencies(by_arm[CONTROL], by_arm[TREATMENT])
    return jsonable({
        "pilot_id": pilot.pilot_id, "starts": pilot.definition["starts"],
        "ends": pilot.definition["ends"], "shadow_simulation": f"shadow-{pilot.pilot_id}",
        "entries": entries, "arms": arms,
        "differences_of": f"{TREATMENT} − {CONTROL}",
        "differences": [difference_json(d) for d in differences]})


# --- the page ---------------------------------------------------------------------------------

LABELS = {"attributed_revenue": "Attributed revenue per partner",
          "commission_cost": "Net commission cost per partner",
          "expansion_arr": "Expansion ARR per partner",
          "cost_per_revenue": "Commission cost per unit of revenue",
          "renewal_rate": "Renewal rate", "churn_rate": "Churn rate",
          "time_to_first_value_days": "Time to first value (days)"}


def label(metric: str) -> str:
    """'attributed_revenue_USD' -> 'Attributed revenue per partner (USD)'."""
    if metric.startswith("score_"):
        return f"Mean score: {metric[len('score_'):].replace('_', ' ')}"
    if metric in LABELS:
        return LABELS[metric]
    name, _, cur = metric.rpartition("_")
    return f"{LABELS.get(name, name)} ({cur})"


def report_html(doc: dict[str, Any], pilot: pilot_store.PilotView) -> str:
    rows = []
    for d in doc["differences"]:
        chart = None
        if d["ci95"] is not None:
            low, high = (Decimal(v) for v in d["ci95"])
            chart = charts.interval(label(d["metric"]), low, Decimal(d["difference"]), high)
        rows.append({**d, "label": label(d["metric"]), "chart": chart})
    currencies = sorted({c for a in ARMS for c in doc["arms"][a]["money"]}
                        | {t["currency"] for a in ARMS for t in doc["arms"][a]["totals"]})
    totals = {a: {t["currency"]: t for t in doc["arms"][a]["totals"]} for a in ARMS}
    milestones = sorted({k for a in ARMS for k in doc["arms"][a]["metrics"]["scores"]})
    return templates().get_template("pilot_report.html").render(
        doc=doc, arms=ARMS, rows=rows, currencies=currencies, totals=totals,
        milestones=milestones, definition=pilot.definition, rolled_out=pilot.rolled_out,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
