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


async def test_the_demo_partner_dashboard_renders(stack, settings, client):
    """The README's screenshot: P-ACME's dashboard on the demo data, as of 2026-04-30, kept
    as tests/artifacts/partner-dashboard-demo.png (docs/img/partner-dashboard.png is a copy)."""
    from tests.integration.test_programme_views import ARTIFACTS
    from tests.integration.test_statement_html import chromium, run_chromium

    binary = chromium()
    await asyncio.to_thread(load_demo, stack, ADMIN_TOKEN, settings.asyncpg_dsn)
    r = await client.get("/v1/partners/P-ACME/dashboard", params={"as_of": "2026-04-30"})
    assert r.status_code == 200, r.text
    balances = (await client.get("/v1/partners/P-ACME/balances",
                                 params={"as_of": "2026-04-30"})).json()["balances"][0]
    assert f'data-bucket="payable">{Decimal(balances["payable"]):,f}<' in r.text
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "partner-dashboard-demo.html"
    page.write_text(r.text, encoding="utf-8")
    shot = ARTIFACTS / "partner-dashboard-demo.png"
    await asyncio.to_thread(run_chromium, binary, f"--screenshot={shot}",
                            "--window-size=1200,1850", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
