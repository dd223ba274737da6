"""`make demo` posts its events in time order, each settled before the next, so its
statement is the pure core's fold of those events in that order, the same on every run."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from decimal import Decimal

import pytest
import yaml

from services.demo import PLAN, SOURCE, demo_events, load_demo
from tests.conftest import ADMIN_TOKEN
from tests.kit import fold_script, usd_as_of
from trailpay.adapters.db import raw
from trailpay.core.plans import Enrollment, PlanBook, parse_plan

pytestmark = pytest.mark.integration


async def test_the_demo_statement_is_the_core_fold_of_its_events_in_time_order(
        stack, settings, engine):
    statement = await asyncio.to_thread(load_demo, stack, ADMIN_TOKEN, settings.asyncpg_dsn)

    events = sorted(demo_events(), key=lambda e: e["time"])
    async with engine.connect() as conn:
        journaled = [r[0] for r in await (await raw(conn)).fetch(
            "SELECT event_id FROM journal WHERE source = $1 ORDER BY seq", SOURCE)]
    assert journaled == [e["id"] for e in events]

    book = PlanBook([parse_plan(yaml.safe_load(PLAN.read_text()))])
    legs, _ = fold_script(book, {"P-ACME": Enrollment("P-ACME", "reseller", "reseller-standard"),
                                 "P-BOLT": Enrollment("P-BOLT", "integrator", "reseller-standard")},
                          [(datetime.fromisoformat(e["time"].replace("Z", "+00:00")), e["type"],
                            e["data"]) for e in events])
    for side, day in (("opening", date(2026, 2, 28)), ("closing", date(2026, 3, 31))):
        want = usd_as_of(legs["P-ACME"], day)
        got = {b["currency"]: b for b in statement[side]}["USD"]
        assert {k: Decimal(v) for k, v in got.items() if k != "currency"} == \
               {k: want.get(k, Decimal(0)) for k in got if k != "currency"}, side
    assert any(ln["bucket"] == "clawed_back" for ln in statement["lines"])  # the churn
