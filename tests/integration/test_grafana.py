"""The Grafana board (deploy/grafana) shows only what the services really export.

Static: the dashboard JSON is well formed for Grafana (unique panel ids, every panel
on the provisioned Prometheus datasource with queries that parse as PromQL), and
docker-compose.yml provisions it next to Prometheus. Live: the gateway, ledger and
accrual run as processes of their own (as in compose, each with its own registry), get
a little traffic (events, a bad event, a dead letter, a late fact, a payout run), and
every metric a panel's PromQL names, with every label it groups or filters by, is read
back from their /metrics.
"""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import (
    cloud_event, deal, eventually, post_events, service_process, setup_programme, uid,
)
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "trailpay.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "trailpay.yml"
COMPOSE = ROOT / "docker-compose.yml"

# Grafana's own interval variables, replaced by durations before a query is parsed.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Series Prometheus makes itself rather than scrapes.
PROMETHEUS_SERIES = {"up"}
# Labels Prometheus adds to every scraped series (deploy/prometheus/prometheus.yml).
TARGET_LABELS = {"job", "instance", "service"}
# What issue 17 asks the board to show, by the metrics that carry it.
REQUIRED = {
    "ingest rate": "trailpay_events_accepted_total",
    "consumer lag": "trailpay_consumer_lag",
    "dead letters": "trailpay_dead_letters_total",
    "re-folds": "trailpay_refolds_total",
    "entries re-folded": "trailpay_refolded_entries_total",
    "payout runs": "trailpay_payout_runs_requested_total",
    "payouts": "trailpay_payouts_total",
    "HTTP latency": "trailpay_http_request_duration_seconds_bucket",
    "HTTP error rate": "trailpay_http_request_duration_seconds_count",
    "balances": "trailpay_balances",
}


# --- reading the board ---------------------------------------------------------------------


def _board() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(board: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _queries(board: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in _panels(board) for t in p.get("targets", [])]


def _parse(expr: str):
    for variable, duration in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, duration)
    assert "$" not in expr, f"{expr!r}: a template variable the board does not define"
    return promql_parser.parse(expr)


def _selectors(node) -> list[tuple[str, set[str]]]:
    """(metric name, label names it filters on) of every vector selector under `node`, and
    the labels its enclosing aggregations group by (`by`), from the parsed PromQL tree."""
    found: list[tuple[str, set[str]]] = []

    def walk(n, grouped: set[str]) -> None:
        if isinstance(n, promql_parser.VectorSelector):
            labels = {m.name for m in n.matchers.matchers} - {"__name__"}
            assert n.name, f"{n.prettify()}: select metrics by name"
            found.append((n.name, labels | grouped))
        elif isinstance(n, promql_parser.MatrixSelector):
            walk(n.vector_selector, grouped)
        elif isinstance(n, promql_parser.AggregateExpr):
            by = set()
            if n.modifier is not None and n.modifier.type == promql_parser.AggModifierType.By:
                by = set(n.modifier.labels)
            walk(n.expr, grouped | by)
            if n.param is not None:
                walk(n.param, grouped)
        elif isinstance(n, promql_parser.BinaryExpr):
            walk(n.lhs, grouped)
            walk(n.rhs, grouped)
        elif isinstance(n, promql_parser.Call):
            for arg in n.args:
                walk(arg, grouped)
        elif isinstance(n, (promql_parser.ParenExpr, promql_parser.UnaryExpr,
                            promql_parser.SubqueryExpr)):
            walk(n.expr, grouped)

    walk(node, set())
    return found


def _series_names(family) -> set[str]:
    """The names a query may select for an exported family: a counter's `_total`, a
    histogram's `_bucket`, `_sum` and `_count`, a gauge's own name (no suffix stripped from
    a gauge that happens to end in _count)."""
    name = family.name
    return {"counter": {f"{name}_total"}, "histogram": {f"{name}_bucket", f"{name}_sum",
                                                        f"{name}_count"},
            "summary": {f"{name}_sum", f"{name}_count"}}.get(family.type, {name})


def _exported(text: str) -> dict[str, set[str]]:
    """series name -> label names, for the families of a /metrics text that have samples
    (a labelled family nobody has used yet shows only its HELP and TYPE)."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        if not samples:
            continue
        for series in _series_names(family):
            labels = {k for s in samples if s.name == series for k in s.labels}
            if any(s.name == series for s in samples):
                out.setdefault(series, set()).update(labels)
    return out


# --- the dashboard JSON --------------------------------------------------------------------


def test_the_board_is_well_formed_for_grafana():
    board = _board()
    assert board["uid"] and board["title"]
    assert board["schemaVersion"] >= 36
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    panels = _panels(board)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    drawn = [p for p in panels if p["type"] != "row"]
    assert len(drawn) >= 10
    for panel in drawn:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("datasource") == {"type": "prometheus", "uid": datasource["uid"]}, (
            f"{title}: datasource must be the provisioned Prometheus ({datasource['uid']})")
        targets = panel.get("targets")
        assert targets, f"{title}: no targets"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{title}: refIds repeat"
        for t in targets:
            assert t.get("expr", "").strip(), f"{title}: target {t['refId']} has no expr"
            assert t.get("datasource", panel["datasource"]) == panel["datasource"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, title
    for title, expr in _queries(board):
        try:
            _parse(expr)
        except ValueError as exc:
            pytest.fail(f"{title}: {expr!r} is not PromQL: {exc}")


def test_the_parser_finds_metrics_and_labels_not_functions():
    (selector,) = _selectors(_parse(
        'histogram_quantile(0.99, sum by (le, route) '
        '(rate(trailpay_http_request_duration_seconds_bucket{status=~"5.."}[$__rate_interval])))'))
    assert selector == ("trailpay_http_request_duration_seconds_bucket", {"le", "route", "status"})
    assert [n for n, _ in _selectors(_parse("sum(rate(a_total[5m])) / sum(b) or vector(0)"))] == [
        "a_total", "b"]


def test_the_board_shows_what_issue_17_asks_for():
    used = {name for _, expr in _queries(_board()) for name, _ in _selectors(_parse(expr))}
    missing = {what: name for what, name in REQUIRED.items() if name not in used}
    assert not missing, f"the board does not show: {missing}"
    lag = [labels for _, expr in _queries(_board()) for name, labels in _selectors(_parse(expr))
           if name == "trailpay_consumer_lag"]
    assert any("partition" in labels for labels in lag), "consumer lag must be per partition"


# --- provisioned in docker-compose ---------------------------------------------------------


def _mounts(service: dict) -> dict[str, Path]:
    """container path -> local path of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out[target] = (ROOT / source).resolve()
    return out


def test_compose_provisions_grafana_next_to_prometheus():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", grafana["image"])
    assert "prometheus" in (grafana.get("depends_on") or [])
    env = {k: str(v) for k, v in grafana["environment"].items()}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous visitors only view"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "GRAFANA_ADMIN_PASSWORD" in readme and "anonymous" in readme.lower()

    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent.resolve(), (
        "the dashboard provider reads a folder compose does not mount")
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[str(home.parent)] / home.name == DASHBOARD.resolve()

    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["access"] == "proxy"
    url = urlsplit(datasource["url"])
    assert url.hostname in services, f"{url.hostname} is not a compose service"
    assert url.hostname == "prometheus"
    published = {str(p).rsplit(":", 1)[-1] for p in services["prometheus"].get("ports", [])}
    assert str(url.port) in published | {"9090"}
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


# --- against the live services -------------------------------------------------------------


async def test_the_balances_gauge_is_the_tables_sums_and_drops_what_is_gone(engine):
    from decimal import Decimal

    from prometheus_client import REGISTRY

    from trailpay.adapters import balance_totals

    async with engine.connect() as conn:
        sums = await balance_totals.totals(conn)
    fake = ("bucket-" + uid("x"), "XTS")
    balance_totals.export_totals({**sums, fake: Decimal("12.34")})
    assert REGISTRY.get_sample_value("trailpay_balances", dict(zip(("bucket", "currency"),
                                                                   fake, strict=True))) == 12.34
    balance_totals.export_totals(sums)
    assert REGISTRY.get_sample_value("trailpay_balances", dict(zip(("bucket", "currency"),
                                                                   fake, strict=True))) is None
    for (bucket, currency), amount in sums.items():
        assert REGISTRY.get_sample_value(
            "trailpay_balances", {"bucket": bucket, "currency": currency}) == float(amount)



async def test_every_panel_names_only_metrics_the_services_export(settings, engine):
    suffix = uid("grafana")
    own = settings.model_copy(update={
        "topic_events": f"trailpay.events.{suffix}", "topic_ledger": f"trailpay.ledger.{suffix}",
        "group_ledger": f"ledger-{suffix}", "group_accrual": f"accrual-{suffix}"})
    ports = {"gateway": free_port(), "ledger": free_port(), "accrual": free_port()}
    procs = [service_process(name, own, port=port,
                             extra_env={"BALANCES_METRIC_SECONDS": "0.5"})
             for name, port in ports.items()]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['gateway']}", timeout=30,
                                     headers={"Authorization":
                                              f"Bearer {own.trailpay_admin_token}"}) as client:
            await _traffic(client, ports)
            wanted = {name: labels for _, expr in _queries(_board())
                      for name, labels in _selectors(_parse(expr))}

            async def scraped() -> dict[str, dict[str, set[str]]]:
                out = {}
                for name, port in ports.items():
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                    out[name] = _exported(text)
                return out

            async def all_there() -> dict | None:
                by_service = await scraped()
                exported = {s for series in by_service.values() for s in series}
                return by_service if set(wanted) - PROMETHEUS_SERIES <= exported else None

            try:
                by_service = await eventually(all_there, timeout=60, interval=0.5)
            except AssertionError:
                by_service = await scraped()
        for name, labels in sorted(wanted.items()):
            if name in PROMETHEUS_SERIES:
                continue
            where = {svc: series[name] for svc, series in by_service.items() if name in series}
            assert where, f"the board uses {name}, which no service exports"
            have = set().union(*where.values()) | TARGET_LABELS
            assert labels <= have, (
                f"the board uses labels {sorted(labels - have)} of {name}, which has "
                f"{sorted(have - TARGET_LABELS)} (exported by {sorted(where)})")
        # Each service's own registry: the gateway serves HTTP, the ledger journals, the
        # accrual posts and keeps the balances gauge.
        assert "trailpay_http_request_duration_seconds_bucket" in by_service["gateway"]
        assert "trailpay_http_request_duration_seconds_bucket" not in by_service["accrual"]
        assert "trailpay_dead_letters_total" in by_service["ledger"]
        assert "trailpay_balances" in by_service["accrual"]
        assert "trailpay_payout_runs_requested_total" in by_service["gateway"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except Exception:  # noqa: BLE001 - a process that will not stop is killed
                proc.kill()
                proc.wait(5)


async def _traffic(client: httpx.AsyncClient, ports: dict[str, int]) -> None:
    """A little of everything the board shows."""
    async def ready() -> bool:
        try:
            return all([(await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                        for port in ports.values()])
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=90, interval=0.5)
    _, (p1, _) = await setup_programme(client)
    # Accepted (ingest, postings, balances), then a fact dated before it (a re-fold).
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]),
                                           time_="2026-03-01T10:00:00Z")])

    async def earned() -> bool:
        r = await client.get(f"/v1/partners/{p1}/balances")
        return bool(r.json()["balances"])

    await eventually(earned, timeout=60)
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]),
                                           time_="2026-02-01T10:00:00Z")])
    # Rejected at the gateway, and dead-lettered by the ledger (a partner not enrolled).
    bad = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")]))
    bad["data"]["acv"] = 12.5
    r = await client.post("/v1/events", json=bad,
                          headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 400, r.text
    await post_events(client, [cloud_event("deal.closed", deal(uid("C"), [(uid("P"), "1")]))])
    # A payout run: the deals' commission is long past its 30-day hold.
    r = await client.post("/v1/payout-runs", json={
        "as_of": datetime.now(UTC).date().isoformat(), "partner_ids": [p1]})
    assert r.status_code == 202, r.text

    async def paid_out() -> bool:
        r = await client.get(f"/v1/partners/{p1}/balances")
        return any(b.get("in_payout") not in (None, "0", "0.00") for b in r.json()["balances"])

    await eventually(paid_out, timeout=60)
