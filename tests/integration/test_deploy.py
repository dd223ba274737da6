"""The deployment files hang together: docker-compose.yml, deploy/Dockerfile,
deploy/prometheus/ and deploy/k8s/.

Static checks: no Docker engine, database or broker is needed. promtool (Debian's
`prometheus` package) checks the Prometheus config and unit-tests the alert rules;
without it those tests are skipped, or fail under CI=true.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
K8S = ROOT / "deploy" / "k8s"
METRICS_PY = ROOT / "trailpay" / "metrics.py"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

TRAILPAY = ("ledger", "accrual", "gateway")
ALL_SERVICES = ("kafka", "postgres", "migrate", *TRAILPAY, "prometheus", "grafana")
ONE_SHOT = ("migrate",)
# The port each trailpay service's /metrics and /healthz listen on, by variable.
PORT_VARIABLE = {"ledger": "METRICS_PORT", "accrual": "METRICS_PORT", "gateway": "GATEWAY_PORT"}


# --- helpers -------------------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _env(service: dict) -> dict[str, str]:
    """A compose `environment`, map or list form, as a dict of strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _image_tag(ref: str) -> str | None:
    """The tag of an image reference (registry ports and digests aside), or None."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _assert_pinned(ref: str, where: str) -> None:
    tag = _image_tag(ref)
    assert tag, f"{where}: image {ref!r} has no tag (implies :latest); pin an exact version"
    assert tag != "latest", f"{where}: image {ref!r} is :latest; pin an exact version"
    assert "$" not in ref, f"{where}: image {ref!r} is interpolated; pin it in the file"
    assert re.search(r"\d+\.\d+", tag), (
        f"{where}: image {ref!r}: tag {tag!r} is not an explicit version (major.minor at least)")


def _healthcheck_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    found = re.search(r"https?://[^'\"\s)]+", text)
    assert found, f"no URL in healthcheck {test!r}"
    return found.group(0)


def _prometheus_targets() -> dict[str, list[tuple[str, str]]]:
    """job_name -> [(target, metrics_path)] from the static configs."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs: dict[str, list[tuple[str, str]]] = {}
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                jobs.setdefault(job["job_name"], []).append((target, path))
    return jobs


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for instruction, args in _dockerfile():
        if instruction not in ("COPY", "ADD"):
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        sources.extend(p.rstrip("/") for p in parts[:-1])
    return sources


def _k8s_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def _absent(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing tool is a failure)")
    pytest.skip(message)


PROMTOOL_MISSING = ("promtool is not on PATH: install Debian's `prometheus` package "
                    "(apt-get install --no-install-recommends prometheus)")


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        _absent(PROMTOOL_MISSING)
    return promtool


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_has_every_service_and_no_version_key():
    compose = _compose()
    assert "version" not in compose, "the compose spec has no `version:` key"
    assert set(ALL_SERVICES) <= set(compose["services"]), (
        f"missing services: {set(ALL_SERVICES) - set(compose['services'])}")


def test_every_image_is_pinned_to_an_explicit_version():
    for name, service in _services().items():
        assert "image" in service, f"{name}: no image (a build must also name its image:tag)"
        _assert_pinned(service["image"], f"service {name}")


def test_the_trailpay_services_share_one_image_built_from_deploy_dockerfile():
    services = _services()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in ("migrate", *TRAILPAY):
        service = services[name]
        assert service["image"] == f"trailpay:{version}", (
            f"{name}: image {service['image']!r}, expected trailpay:{version} (pyproject version)")
        build = service.get("build")
        assert isinstance(build, dict), f"{name}: build must be {{context, dockerfile}}"
        assert (ROOT / build.get("context", ".") / build["dockerfile"]).resolve() == DOCKERFILE


def test_kafka_runs_in_kraft_mode_without_zookeeper():
    compose = _compose()
    assert "zookeeper" not in json.dumps(compose).lower(), (
        "KRaft only: no ZooKeeper service, image or setting")
    kafka = _services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert {"broker", "controller"} <= roles
    for key in ("KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS",
                "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"):
        assert env.get(key), f"kafka: {key} is not set"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert f"{controller}://" in env["KAFKA_LISTENERS"]
    assert f"{controller}:" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false", (
        "trailpay creates its own topics; the broker must not auto-create them")
    assert env["KAFKA_NUM_PARTITIONS"] == "4"
    assert "kafka-broker-api-versions.sh" in str(kafka["healthcheck"]["test"])


def test_each_trailpay_service_is_configured_and_runs_its_command():
    services = _services()
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1]
    postgres_env = _env(services["postgres"])
    for name in ("migrate", *TRAILPAY):
        service = services[name]
        env = _env(service)
        assert _command(service) == ["trailpay", name], f"{name}: command {_command(service)}"
        assert env.get("KAFKA_BOOTSTRAP_SERVERS") == advertised, (
            f"{name}: KAFKA_BOOTSTRAP_SERVERS must be kafka's advertised listener {advertised}")
        url = urlsplit(env.get("DATABASE_URL", ""))
        assert url.scheme == "postgresql", f"{name}: DATABASE_URL must be postgresql://"
        assert (url.hostname, url.port) == ("postgres", 5432), f"{name}: DATABASE_URL host"
        assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]
        assert url.username == postgres_env["POSTGRES_USER"]
        assert re.fullmatch(r"\$\{TRAILPAY_ADMIN_TOKEN:\?[^}]+\}", env["TRAILPAY_ADMIN_TOKEN"]), (
            f"{name}: TRAILPAY_ADMIN_TOKEN must be required from the environment (${{VAR:?msg}})")
        assert "LOG_LEVEL" in env
    for name in TRAILPAY:
        env = _env(services[name])
        assert env.get("GATEWAY_HOST") == "0.0.0.0", (
            f"{name}: must listen on all interfaces to be scraped and health-checked")
        assert env.get(PORT_VARIABLE[name], "").isdigit(), f"{name}: {PORT_VARIABLE[name]}"
    assert _env(services["ledger"])["METRICS_PORT"] == "9101"
    assert _env(services["accrual"])["METRICS_PORT"] == "9102"
    assert _env(services["gateway"])["GATEWAY_PORT"] == "8000"


def test_long_running_services_have_healthchecks_and_restart():
    services = _services()
    for name, service in services.items():
        if name in ONE_SHOT:
            assert str(service.get("restart", "no")) == "no", f"{name} is one-shot"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])


def test_trailpay_healthchecks_call_healthz_on_their_own_port():
    for name in TRAILPAY:
        service = _services()[name]
        url = urlsplit(_healthcheck_url(service))
        assert url.path == "/healthz", f"{name}: healthcheck must call /healthz"
        assert str(url.port) == _env(service)[PORT_VARIABLE[name]], (
            f"{name}: healthcheck port {url.port} is not {PORT_VARIABLE[name]}")
        test = service["healthcheck"]["test"]
        assert "curl" not in str(test) and "wget" not in str(test), (
            f"{name}: the python:slim image has neither curl nor wget")


def test_startup_order():
    services = _services()
    for name in TRAILPAY:
        assert _depends_on(services[name]) == {
            "kafka": "service_healthy",
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
        }, f"{name}: depends_on"
    assert _depends_on(services["migrate"]).get("postgres") == "service_healthy"
    assert set(TRAILPAY) <= set(_depends_on(services["prometheus"]))


def test_gateway_publishes_its_port_and_state_lives_in_named_volumes():
    compose = _compose()
    services = compose["services"]
    port = _env(services["gateway"])["GATEWAY_PORT"]
    published = [str(p).rsplit(":", 1)[-1] if not isinstance(p, dict) else str(p["target"])
                 for p in services["gateway"].get("ports", [])]
    assert port in published, f"gateway must publish GATEWAY_PORT {port}"
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind-mounted {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"
    for name in ("kafka", "postgres"):
        assert any(not str(v).startswith((".", "/")) for v in services[name].get("volumes", [])), (
            f"{name}: its data must live in a named volume")


SPEC = Path(__file__).parent / "data" / "compose_spec.json"


def test_compose_file_validates_against_the_compose_spec_schema():
    """Against the compose-spec JSON schema kept in tests/integration/data (from the
    compose-spec project, as shipped by Debian's docker-compose 1.29); nothing is downloaded."""
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(json.loads(SPEC.read_text()))
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in validator.iter_errors(_compose())]
    assert not errors, "docker-compose.yml against the compose spec:\n" + "\n".join(errors)


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_exactly_the_three_services_on_the_compose_ports():
    services = _services()
    expected = {f"{name}:{_env(services[name])[PORT_VARIABLE[name]]}" for name in TRAILPAY}
    jobs = _prometheus_targets()
    targets = {target for entries in jobs.values() for target, _ in entries}
    assert targets == expected, f"scrape targets {targets}, compose ports say {expected}"
    for name in TRAILPAY:
        assert jobs.get(f"trailpay-{name}"), f"no job trailpay-{name}"
        assert [t for t, _ in jobs[f"trailpay-{name}"]] == [
            f"{name}:{_env(services[name])[PORT_VARIABLE[name]]}"]
    assert all(path == "/metrics" for entries in jobs.values() for _, path in entries)
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["global"]["scrape_interval"] == "15s"


def test_prometheus_service_mounts_its_config_and_rule_files():
    prometheus = _services()["prometheus"]
    mounts = {}
    for volume in prometheus.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS
    rule_files = yaml.safe_load(PROMETHEUS.read_text()).get("rule_files") or []
    assert rule_files, "prometheus.yml must load the alert rules"
    for rule_file in rule_files:
        local = PROMETHEUS.parent / rule_file
        assert local.is_file(), f"rule file {rule_file} is not beside prometheus.yml"
        assert (ROOT / mounts[f"/etc/prometheus/{rule_file}"]).resolve() == local.resolve(), (
            f"{rule_file} is not mounted next to the config in the prometheus service")


def test_alert_rules_use_metrics_that_exist():
    declared = set(re.findall(r'"(trailpay_[a-z0-9_]+)"', METRICS_PY.read_text()))
    assert declared, "no metric names found in trailpay/metrics.py"
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exprs = " ".join(str(r["expr"]) for r in rules)
    for used in set(re.findall(r"\btrailpay_[a-z0-9_]+", exprs)):
        base = re.sub(r"_(bucket|count|sum)$", "", used)
        assert used in declared or base in declared, f"alerts.yml uses unknown metric {used}"
    names = {r["alert"] for r in rules}
    assert {"TrailpayServiceDown", "TrailpayConsumerLagHigh", "TrailpayDeadLettersIncreasing",
            "TrailpayHttpLatencyHigh", "TrailpayConsumerStalled"} <= names


def test_promtool_checks_the_prometheus_config():
    promtool = _promtool()
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# Alert expressions, unit-tested by promtool on synthetic series. Annotations are
# stripped from a copy of the rules so that only what fires, and with which labels, counts.
RULE_TESTS = """
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="trailpay-ledger", instance="ledger:9101"}'
        values: '0x10'
      - series: 'up{job="trailpay-gateway", instance="gateway:8000"}'
        values: '1x10'
      - series: 'trailpay_dead_letters_total{stage="validate", reason="schema", instance="ledger:9101"}'
        values: '0 0 0 1 1 1'
    alert_rule_test:
      - eval_time: 1m
        alertname: TrailpayServiceDown
        exp_alerts: []
      - eval_time: 3m
        alertname: TrailpayServiceDown
        exp_alerts:
          - exp_labels: {severity: critical, job: trailpay-ledger, instance: "ledger:9101"}
      - eval_time: 2m
        alertname: TrailpayDeadLettersIncreasing
        exp_alerts: []
      - eval_time: 4m
        alertname: TrailpayDeadLettersIncreasing
        exp_alerts:
          - exp_labels: {severity: warning, stage: validate, reason: schema}
  - interval: 1m
    input_series:
      # ledger: stuck from minute 2 on (the gauge counts the seconds); accrual: a poison
      # record bisected and dead-lettered within a minute, then progressing again.
      - series: 'trailpay_stalled_seconds{service="ledger", instance="ledger:9101"}'
        values: '0 0 0+60x10'
      - series: 'trailpay_stalled_seconds{service="accrual", instance="accrual:9102"}'
        values: '0 5 40 0 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 4m
        alertname: TrailpayConsumerStalled
        exp_alerts: []
      - eval_time: 6m
        alertname: TrailpayConsumerStalled
        exp_alerts:
          - exp_labels: {severity: critical, service: ledger, instance: "ledger:9101"}
  - interval: 1m
    input_series:
      # accrual: one partition reported by two replicas (a rebalance): counted once.
      - series: 'trailpay_consumer_lag{consumer="trailpay-accrual", topic="trailpay.ledger", partition="0", instance="a"}'
        values: '6000x20'
      - series: 'trailpay_consumer_lag{consumer="trailpay-accrual", topic="trailpay.ledger", partition="0", instance="b"}'
        values: '6000x20'
      # ledger: two partitions far behind: 12000 in all.
      - series: 'trailpay_consumer_lag{consumer="trailpay-ledger", topic="trailpay.events", partition="0", instance="a"}'
        values: '6000x20'
      - series: 'trailpay_consumer_lag{consumer="trailpay-ledger", topic="trailpay.events", partition="1", instance="b"}'
        values: '6000x20'
    alert_rule_test:
      - eval_time: 5m
        alertname: TrailpayConsumerLagHigh
        exp_alerts: []
      - eval_time: 12m
        alertname: TrailpayConsumerLagHigh
        exp_alerts:
          - exp_labels: {severity: warning, consumer: trailpay-ledger, topic: trailpay.events}
  - interval: 1m
    input_series:
      # /v1/events: every request between 1s and 2.5s; /healthz: all under 5ms.
      - series: 'trailpay_http_request_duration_seconds_bucket{route="/v1/events", le="1.0"}'
        values: '0x20'
      - series: 'trailpay_http_request_duration_seconds_bucket{route="/v1/events", le="2.5"}'
        values: '0+60x20'
      - series: 'trailpay_http_request_duration_seconds_bucket{route="/v1/events", le="+Inf"}'
        values: '0+60x20'
      - series: 'trailpay_http_request_duration_seconds_bucket{route="/healthz", le="0.005"}'
        values: '0+60x20'
      - series: 'trailpay_http_request_duration_seconds_bucket{route="/healthz", le="+Inf"}'
        values: '0+60x20'
      # /v1/plans: 10% server errors.
      - series: 'trailpay_http_request_duration_seconds_count{route="/v1/plans", status="500"}'
        values: '0+6x20'
      - series: 'trailpay_http_request_duration_seconds_count{route="/v1/plans", status="200"}'
        values: '0+54x20'
      - series: 'trailpay_http_request_duration_seconds_count{route="/healthz", status="200"}'
        values: '0+60x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: TrailpayHttpLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, route: /v1/events}
      - eval_time: 15m
        alertname: TrailpayHttpErrorsHigh
        exp_alerts:
          - exp_labels: {severity: warning, route: /v1/plans}
"""


def test_promtool_unit_tests_the_alert_rules(tmp_path):
    promtool = _promtool()
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = yaml.safe_load(RULE_TESTS)
    tests["rule_files"] = ["alerts.yml"]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- deploy/Dockerfile and .dockerignore ---------------------------------------------------


def test_dockerfile_base_image_is_pinned_and_user_is_not_root():
    instructions = _dockerfile()
    stages: set[str] = set()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert froms, "no FROM"
    for args in froms:
        parts = [p for p in args.split() if not p.startswith("--")]
        if parts[0].lower() not in stages:
            _assert_pinned(parts[0], "deploy/Dockerfile FROM")
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2].lower())
    assert re.match(r"python:3\.11\.\d+-slim", froms[-1].split()[0]), froms[-1]
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_copies_schemas_and_every_package():
    sources = _copy_sources()
    assert "schemas" in sources, "services load JSON schemas from schemas/ at run time"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {re.sub(r"[.*].*$", "", pattern) for pattern in include}
    assert packages, "pyproject.toml lists no packages"
    for package in packages:
        assert package in sources, f"deploy/Dockerfile does not copy the package {package}/"
    assert "pyproject.toml" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"deploy/Dockerfile copies {source}, which is missing"


def test_dockerfile_command_install_and_ports():
    instructions = _dockerfile()
    text = DOCKERFILE.read_text()
    assert not [a for i, a in instructions if i == "ENTRYPOINT"], (
        "no ENTRYPOINT: compose and Kubernetes pass the full `trailpay ...` command")
    cmds = [a for i, a in instructions if i == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["trailpay", "gateway"]
    assert "pip install" in text
    assert "[test]" not in text, "the image installs no test extras"
    exposed = {p.split("/")[0] for i, a in instructions if i == "EXPOSE" for p in a.split()}
    services = _services()
    ports = {_env(services[name])[PORT_VARIABLE[name]] for name in TRAILPAY}
    assert ports <= exposed, f"EXPOSE {exposed} lacks {ports - exposed}"


def test_dockerignore_keeps_the_context_small_and_the_sources_in():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in (".venv", ".git", ".trailpay", "tests"):
        assert needed in patterns, f".dockerignore should exclude {needed}"

    def excluded(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.rstrip("/")) or
                   fnmatch.fnmatch(path.split("/")[0], p.rstrip("/")) for p in patterns)

    for source in _copy_sources():
        assert not excluded(source), f".dockerignore excludes {source}, which the image copies"
    assert not excluded("deploy/Dockerfile")


# --- deploy/k8s ----------------------------------------------------------------------------


def test_k8s_manifests_parse_and_have_the_expected_kinds():
    docs = _k8s_documents()
    assert docs, "no manifests under deploy/k8s"
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: apiVersion/kind"
        assert doc.get("metadata", {}).get("name"), f"{path.name}: metadata.name"
    kinds = [doc["kind"] for _, doc in docs]
    for kind in ("ConfigMap", "Secret", "Job", "Service"):
        assert kind in kinds, f"no {kind} under deploy/k8s"
    deployments = {_component(doc) for _, doc in docs if doc["kind"] == "Deployment"}
    assert deployments == set(TRAILPAY)


def _component(doc: dict) -> str:
    return doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def _workloads(kind: str) -> list[dict]:
    return [doc for _, doc in _k8s_documents() if doc["kind"] == kind]


def _config_env() -> dict[str, str]:
    (config,) = _workloads("ConfigMap")
    return {k: str(v) for k, v in config["data"].items()}


def test_k8s_config_and_secret_provide_the_environment():
    env = _config_env()
    (secret,) = _workloads("Secret")
    secret_keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
    assert {"DATABASE_URL", "TRAILPAY_ADMIN_TOKEN"} <= secret_keys
    assert "KAFKA_BOOTSTRAP_SERVERS" in env
    assert env.get("GATEWAY_HOST") == "0.0.0.0"
    assert not {"DATABASE_URL", "TRAILPAY_ADMIN_TOKEN"} & set(env), "secrets in the ConfigMap"
    names = {(d["kind"], d["metadata"]["name"]) for _, d in _k8s_documents()}
    for kind in ("Deployment", "Job"):
        for workload in _workloads(kind):
            for container in workload["spec"]["template"]["spec"]["containers"]:
                for ref in container.get("envFrom", []):
                    if "configMapRef" in ref:
                        assert ("ConfigMap", ref["configMapRef"]["name"]) in names
                    if "secretRef" in ref:
                        assert ("Secret", ref["secretRef"]["name"]) in names


def _container_port(container: dict, port) -> int:
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return declared["containerPort"]
    raise AssertionError(f"{container['name']}: probe port {port!r} is not a container port")


def test_every_k8s_deployment_has_probes_resources_and_scrape_annotations():
    config = _config_env()
    for deployment in _workloads("Deployment"):
        name = _component(deployment)
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert container.get("command") == ["trailpay", name], f"{name}: command"
        _assert_pinned(container["image"], f"k8s {name}")
        live, ready = container.get("livenessProbe"), container.get("readinessProbe")
        assert live and ready, f"{name}: liveness and readiness probes are required"
        assert live["httpGet"]["path"] == "/healthz", f"{name}: liveness must be /healthz"
        assert ready["httpGet"]["path"] == "/readyz", f"{name}: readiness must be /readyz"
        port = _container_port(container, live["httpGet"]["port"])
        assert _container_port(container, ready["httpGet"]["port"]) == port
        env = {**config, **{e["name"]: str(e["value"]) for e in container.get("env", [])}}
        assert str(port) == env[PORT_VARIABLE[name]], (
            f"{name}: probes use port {port} but {PORT_VARIABLE[name]} is {env.get(PORT_VARIABLE[name])}")
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{name}: resources.{part}"
        annotations = template["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", f"{name}: scrape annotation"
        assert annotations.get("prometheus.io/port") == str(port)
        assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items(), f"{name}: selector"
        if name in ("ledger", "accrual"):
            assert deployment["spec"]["replicas"] == 2, f"{name}: scales as a consumer group"


def test_k8s_migrate_job_and_gateway_service():
    (job,) = _workloads("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["trailpay", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    (service,) = _workloads("Service")
    (gateway,) = [d for d in _workloads("Deployment") if _component(d) == "gateway"]
    assert service["spec"]["selector"].items() <= gateway["spec"]["template"]["metadata"][
        "labels"].items(), "the Service selects no gateway pod"
    (gw_container,) = gateway["spec"]["template"]["spec"]["containers"]
    for port in service["spec"]["ports"]:
        assert _container_port(gw_container, port.get("targetPort", port["port"])) == int(
            _config_env()["GATEWAY_PORT"])
