"""A statement as CSV and as a printable HTML page, both built from its JSON shape.

Building every format from the same JSON document means the CSV and the page can
never disagree with the API: the totals a partner reads are the JSON's totals.
Text a person typed (reasons, references) reaches the page only through jinja2's
autoescaping, and the CSV only with a leading quote where a spreadsheet would
otherwise run it as a formula.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from trailpay.core.money import round_money
from trailpay.core.postings import BUCKETS
from trailpay.core.statements import month_bounds

CSV_COLUMNS = ("section", "date", "currency", "bucket", "amount", "event_type", "event_id",
               "customer_id", "deal_id", "rule_id", "rule_kind", "plan_id", "plan_version",
               "base", "rate", "multiplier", "share", "posting_id", "explanation")
_TEXT = frozenset({"event_id", "customer_id", "deal_id", "rule_id", "plan_id", "posting_id",
                   "explanation"})
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in _TEXT and isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def statement_csv(doc: dict[str, Any]) -> str:
    first, last = month_bounds(doc["month"])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)

    def balances(section: str, day: date) -> None:
        for b in doc[section]:
            for bucket in BUCKETS:
                row = {"section": section, "date": day.isoformat(), "currency": b["currency"],
                       "bucket": bucket, "amount": b[bucket]}
                w.writerow([_cell(c, row.get(c)) for c in CSV_COLUMNS])

    balances("opening", first)
    for ln in doc["lines"]:
        w.writerow([_cell(c, {**ln, "section": "line"}.get(c)) for c in CSV_COLUMNS])
    balances("closing", last)
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------

def _money(text: str | None) -> str:
    """'-7200.00' -> '-7,200.00' (the digits the API sent, thousands separated)."""
    if text is None:
        return ""
    d = Decimal(text)
    return f"{d:,f}"


def _base(text: str | None, currency: str) -> str:
    """A line's base (a money amount, sent normalised) with the currency's minor-unit digits."""
    if text is None:
        return ""
    return _money(f"{round_money(Decimal(text), currency):f}")


def _pct(text: str | None) -> str:
    if text is None:
        return ""
    return f"{(Decimal(text) * 100).normalize():f}%"


def _label(text: str | None) -> str:
    return (text or "").replace("_", " ")


@cache
def _templates() -> Environment:
    env = Environment(loader=PackageLoader("services.gateway", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=_money, base=_base, pct=_pct, label=_label)
    return env


templates = _templates  # the gateway's one jinja2 environment (the dashboards use it too)


def _summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per currency and bucket: opening, change in the month, closing (strings from the JSON)."""
    opening = {b["currency"]: b for b in doc["opening"]}
    out = []
    for closing in doc["closing"]:
        cur = closing["currency"]
        start = opening.get(cur, {})
        rows = []
        for bucket in BUCKETS:
            o, c = start.get(bucket, "0"), closing[bucket]
            rows.append({"bucket": bucket, "opening": start.get(bucket, f"{abs(Decimal(c)) * 0:f}"),
                         "closing": c,
                         "change": f"{Decimal(c) - Decimal(o):f}"})
        out.append({"currency": cur, "rows": rows,
                    "lines": sum(1 for ln in doc["lines"] if ln["currency"] == cur)})
    return out


def statement_html(doc: dict[str, Any], now: datetime | None = None) -> str:
    first, last = month_bounds(doc["month"])
    return _templates().get_template("statement.html").render(
        doc=doc, first=first, last=last, title=date(first.year, first.month, 1).strftime("%B %Y"),
        summary=_summary(doc), buckets=BUCKETS,
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"))
