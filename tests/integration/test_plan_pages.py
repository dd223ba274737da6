"""Plan explainer, change log and plan.version_published, on the real stack.

The explainer's figures are the engine's: publish a plan, publish a version with another
rate, and the example's figure follows. The change log says the rate changed and that the
version was retroactive (it re-rated a recorded deal). Publishing emits
plan.version_published on trailpay.notifications, read here from the real broker and
checked against its schema. Both pages render in headless Chromium with no console
message; the screenshots are kept under the temp folder (trailpay-plan-shots).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import httpx
import jsonschema_rs
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.helpers import cloud_event, deal, eventually, post_events, uid
from tests.integration.test_statement_html import chromium, run_chromium
from trailpay.adapters import api_keys

pytestmark = pytest.mark.integration

SHOTS = Path(tempfile.gettempdir()) / "trailpay-plan-shots"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "messages" / \
    "plan.version_published.json"

PLAN = """
plan_id: {plan_id}
version: {version}
effective_from: "{effective_from}"
currency: USD
partner_types: [reseller, integrator]
rules:
  - {{id: anchor, kind: upfront, base: acv, rate: "{rate}", cap: "25000.00",
     vesting: {{held_pct: "0.40", release_on: [onboarding_completed], within_days: 90}}}}
  - {{id: grow, kind: expansion, rate: "0.10"}}
  - {{id: build, kind: milestone, milestone: activated, amount: "300.00",
     partner_types: [integrator]}}
clawback: {{window_days: 180, mode: full}}
payout: {{minimum: "100.00", hold_days: 30, cadence: monthly}}
"""


async def publish(client, plan_id: str, version: int, effective_from: str, rate: str,
                  retroactive: bool = False) -> httpx.Response:
    return await client.put(
        f"/v1/plans/{plan_id}/versions/{version}",
        params={"retroactive": "true"} if retroactive else None,
        content=PLAN.format(plan_id=plan_id, version=version, effective_from=effective_from,
                            rate=rate).encode(), headers={"Content-Type": "application/yaml"})


def anchor(doc: dict) -> dict:
    return next(t for t in doc["terms"] if t["key"] == "anchor")


async def notifications(settings, plan_id: str, n: int) -> list[dict]:
    consumer = AIOKafkaConsumer(settings.topic_notifications,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: list[dict] = []
    try:
        async def poll():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    if r.key.decode() == plan_id:
                        found.append(orjson.loads(r.value))
            return len(found) >= n
        await eventually(poll, timeout=20)
    finally:
        await consumer.stop()
    return found


async def test_explainer_figures_follow_the_plan_and_the_change_log_says_so(
        client, settings, stack, engine):
    plan_id, partner = uid("plan"), uid("P")
    r = await publish(client, plan_id, 1, "2025-01-01", "0.20")
    assert r.status_code == 201, r.text
    v1 = (await client.get(f"/v1/plans/{plan_id}/versions/1/explainer",
                           headers={"Accept": "application/json"})).json()
    # 20% of 100,000.00 = 20,000.00, 40% (8,000.00) held until onboarding.
    assert anchor(v1)["examples"][0]["figures"] == {"earned": "20,000.00", "held": "8,000.00"}

    # A deal recorded in v2's period makes v2 retroactive.
    r = await client.put(f"/v1/partners/{partner}", json={"type": "reseller", "plan_id": plan_id})
    assert r.status_code == 201, r.text
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(partner, "1")]),
                                           time_="2025-08-01T09:00:00Z")])

    async def recorded():
        st = (await client.get(f"/v1/partners/{partner}/statements/2025-08")).json()
        return st["lines"] or None
    await eventually(recorded)
    r = await publish(client, plan_id, 2, "2025-07-01", "0.15")
    assert r.status_code == 409 and r.json()["field"] == "retroactive", r.text
    r = await publish(client, plan_id, 2, "2025-07-01", "0.15", retroactive=True)
    assert r.status_code == 201 and r.json()["rerated_facts"] == 1, r.text

    v2 = (await client.get(f"/v1/plans/{plan_id}/versions/2/explainer",
                           headers={"Accept": "application/json"})).json()
    assert anchor(v2)["examples"][0]["figures"] == {"earned": "15,000.00", "held": "6,000.00"}
    assert "15,000.00 USD upfront, 6,000.00 USD of it held" in anchor(v2)["examples"][0]["outcome"]
    md = await client.get(f"/v1/plans/{plan_id}/versions/2/explainer",
                          headers={"Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert "**15,000.00 USD upfront, 6,000.00 USD of it held" in md.text
    assert md.text.startswith(f"# How you earn: {plan_id}, version 2")

    changes = (await client.get(f"/v1/plans/{plan_id}/changes",
                                params={"from": 1, "to": 2})).json()
    [step] = changes["steps"]
    assert (step["from"], step["to"], step["effective_from"], step["retroactive"],
            step["rerated_facts"]) == (1, 2, "2025-07-01", True, 1)
    assert [(c["field"], c["before"], c["after"]) for c in step["changes"]] == [
        ("rules.anchor.rate", "20%", "15%")]
    r = await client.get(f"/v1/plans/{plan_id}/changes", params={"from": 2, "to": 1})
    assert r.status_code == 422 and r.json()["field"] == "from", r.text
    r = await client.get(f"/v1/plans/{plan_id}/changes", params={"to": 7})
    assert r.status_code == 404 and r.json()["field"] == "to", r.text

    # plan.version_published, from the real broker, as its schema says.
    messages = await notifications(settings, plan_id, 2)
    validator = jsonschema_rs.validator_for(orjson.loads(SCHEMA.read_bytes()))
    for m in messages:
        validator.validate(m)
    by_version = {m["data"]["version"]: m for m in messages}
    assert set(by_version) == {1, 2}
    assert by_version[1]["data"]["previous_version"] is None
    assert by_version[1]["data"]["retroactive"] is False
    assert by_version[2]["data"]["retroactive"] is True
    assert by_version[2]["data"]["changes"] == step["changes"]
    assert by_version[2]["data"]["changes_url"] == f"/v1/plans/{plan_id}/changes?from=1&to=2"

    # A key bound to a reseller sees the reseller's terms, and no integrator's.
    async with engine.begin() as conn:
        _, token = await api_keys.create(conn, uid("bound"), ["statements:read"], partner)
    async with httpx.AsyncClient(base_url=stack, timeout=30.0,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Accept": "application/json"}) as mine:
        own = (await mine.get(f"/v1/plans/{plan_id}/versions/2/explainer")).json()
        assert own["partner_type"] == "reseller"
        assert "build" not in {t["key"] for t in own["terms"]}
        r = await mine.get(f"/v1/plans/{plan_id}/versions/2/explainer",
                           params={"partner_type": "integrator"})
        assert r.status_code == 404 and r.json()["field"] == "partner_type", r.text
    every = (await client.get(f"/v1/plans/{plan_id}/versions/2/explainer",
                              headers={"Accept": "application/json"})).json()
    build = next(t for t in every["terms"] if t["key"] == "build")
    assert build["applies_to"] == ["integrator"]
    assert build["examples"][0]["figures"] == {"earned": "300.00"}

    # Both pages in headless Chromium: no console message, the JSON's figures on the page.
    binary = chromium()
    SHOTS.mkdir(exist_ok=True)
    pages = {
        "explainer": await client.get(f"/v1/plans/{plan_id}/versions/2/explainer"),
        "changes": await client.get(f"/v1/plans/{plan_id}/changes?from=1&to=2",
                                    headers={"Accept": "text/html"}),
    }
    for name, r in pages.items():
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = SHOTS / f"{name}-{plan_id}.html"
        page.write_text(r.text, encoding="utf-8")
        run = await asyncio.to_thread(run_chromium, binary, "--enable-logging=stderr", "--v=0",
                                      "--dump-dom", page.as_uri())
        assert b"CONSOLE" not in run.stderr, run.stderr.decode()[-2000:]
        dom = run.stdout.decode()
        shot = SHOTS / f"{name}-{plan_id}.png"
        await asyncio.to_thread(run_chromium, binary, f"--screenshot={shot}",
                                "--window-size=1200,1600", page.as_uri())
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if name == "explainer":
            shown = re.findall(r'data-earned="([^"]+)"', dom)
            wanted = [e["figures"]["earned"] for t in every["terms"] for e in t["examples"]
                      if "earned" in e["figures"]]
            assert shown == wanted and "15,000.00" in shown
            assert "<script" not in dom.split("<body", 1)[1]
        else:
            assert 'data-field="rules.anchor.rate"' in dom and "retroactive: 1 recorded" in dom
