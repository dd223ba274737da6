"""What an SRE scrapes and probes: /metrics in Prometheus text format, /healthz, /readyz,
on the gateway and on both consumer services."""

from __future__ import annotations

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import cloud_event, deal, eventually, post_events, setup_programme, uid

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[str, float]:
    """name{labels} -> value, parsed with Prometheus' own text-format parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _total(samples: dict[str, float], prefix: str, *having: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix + "{") and all(h in k for h in having))


async def test_every_service_is_live_ready_and_counts_what_it_does(client, stack, ops_ports):
    _, (p1, _) = await setup_programme(client)
    before = _samples((await client.get("/metrics")).text)
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))])
    bad = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
    bad["data"]["acv"] = 12.5
    r = await client.post("/v1/events", content=orjson.dumps(bad),
                          headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 400

    gateway = _samples((await client.get("/metrics")).text)
    assert _total(gateway, "trailpay_events_accepted_total", "intake=http", "type=deal.closed") == \
        _total(before, "trailpay_events_accepted_total", "intake=http", "type=deal.closed") + 1
    assert _total(gateway, "trailpay_events_rejected_total", "intake=http") >= 1
    assert _total(gateway, "trailpay_http_request_duration_seconds_count", "route=/v1/events") >= 2

    async with httpx.AsyncClient(timeout=10) as http:
        async def up(base: str) -> dict | None:
            try:
                return (await http.get(f"{base}/healthz")).json()
            except httpx.TransportError:  # still joining its consumer group
                return None

        for name, port in ops_ports.items():
            base = f"http://127.0.0.1:{port}"
            assert await eventually(lambda b=base: up(b), timeout=60) == {"status": "ok", "service": name}
            ready = await http.get(f"{base}/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": True, "broker": True, "consuming": True}

        async def posted() -> bool:
            text = (await http.get(f"http://127.0.0.1:{ops_ports['accrual']}/metrics")).text
            return _total(_samples(text), "trailpay_postings_total", "rule_kind=upfront") > 0

        await eventually(posted)
        ledger = _samples((await http.get(f"http://127.0.0.1:{ops_ports['ledger']}/metrics")).text)
    assert _total(ledger, "trailpay_journal_appends_total", "type=deal.closed") >= 1
    assert _total(ledger, "trailpay_batch_size_count", "consumer=trailpay-ledger") >= 1
    assert any(k.startswith("trailpay_batch_processing_seconds_bucket") for k in ledger)
    assert (await client.get("/healthz")).status_code == 200
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready" and all(ready["checks"].values())
