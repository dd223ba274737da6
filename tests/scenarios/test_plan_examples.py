"""Every worked example in docs/plans.md, run through the engine and checked to the cent.

The examples are the documentation; this file makes them executable, so the
docs and the engine cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit import Ledger, deal, fact, plan
from trailpay.core.accrual import AccrualError

DOC = Path(__file__).resolve().parents[2] / "docs" / "plans.md"


def _examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(example:.*?)```", DOC.read_text(), flags=re.S)
    return [yaml.safe_load(b) for b in blocks]


def _s(v: Any) -> str:
    return v.isoformat() if isinstance(v, date) else str(v)


def _ledger(ex: dict[str, Any]) -> Ledger:
    defaults = {"hold_days": ex.get("hold_days", 0), "clawback": ex.get("clawback")}
    if "plans" in ex:
        plans = [plan(p["rules"], version=p["version"], effective_from=_s(p["effective_from"]),
                      **defaults) for p in ex["plans"]]
    else:
        plans = [plan(ex["rules"], effective_from=_s(ex.get("effective_from", "2026-01-01")),
                      **defaults)]
    return Ledger(plans, overrides=ex.get("overrides", {}))


def _fact(ev: dict[str, Any]):
    data = {k: _s(v) if isinstance(v, date) else v for k, v in ev["data"].items()}
    if ev["type"] == "deal.closed":
        return deal(customer=data["customer_id"], acv=data["acv"], tcv=data.get("tcv"),
                    kind=data.get("kind", "new"), start=data.get("start_date", _s(ev["at"])),
                    term=data.get("term_months", 12), currency=data.get("currency", "USD"),
                    partners=list(ev.get("to", {"P1": "1"}).items()),
                    deal_id=f"D-{data['customer_id']}")
    return fact(ev["type"], **data)


EXAMPLES = _examples()


def test_the_docs_hold_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e["example"] for e in EXAMPLES])
def test_worked_example(ex: dict[str, Any]) -> None:
    led = _ledger(ex)
    for ev in ex["events"]:
        f = _fact(ev)
        for partner, share in ev.get("to", {"P1": "1"}).items():
            recorded = _s(ev["recorded"]) if "recorded" in ev else None
            if "rejected" in ev:
                with pytest.raises(AccrualError, match=re.escape(ev["rejected"])):
                    led.arrive(f, _s(ev["at"]), partner, str(share), recorded)
                continue
            led.arrive(f, _s(ev["at"]), partner, str(share), recorded)
    for check in ex["expect"]:
        currency = check.get("currency", "USD")
        for partner, want in check.items():
            if partner in ("as_of", "currency"):
                continue
            got = led.balances(partner, _s(check["as_of"]), currency)
            assert got == {b: Decimal(a) for b, a in want.items()}, (partner, check["as_of"])
            for bucket, amount in want.items():  # amounts carry the currency's digits
                assert str(got[bucket].quantize(Decimal(amount))) == amount
    sentences = {g.partner_id: [] for g in led.groups}
    for g in led.groups:
        sentences[g.partner_id].append(g.explanation.sentence)
    for partner, wanted in ex.get("sentences", {}).items():
        for sentence in wanted:
            assert sentence in sentences[partner], sentences[partner]
