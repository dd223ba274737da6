"""Plan publication and enrolment: immutable versions, errors that name the field, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.helpers import SIMPLE_PLAN, uid

pytestmark = pytest.mark.integration
YAML = {"Content-Type": "application/yaml"}


async def test_versions_are_immutable_and_republishing_the_same_is_idempotent(client):
    plan_id = uid("plan")
    doc = SIMPLE_PLAN.format(plan_id=plan_id).encode()
    assert (await client.put(f"/v1/plans/{plan_id}/versions/1", content=doc, headers=YAML)).status_code == 201
    again = await client.put(f"/v1/plans/{plan_id}/versions/1", content=doc, headers=YAML)
    assert again.status_code == 200 and again.json()["created"] is False
    other = await client.put(f"/v1/plans/{plan_id}/versions/1",
                             content=doc.replace(b'"0.20"', b'"0.30"'), headers=YAML)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    got = (await client.get(f"/v1/plans/{plan_id}")).json()
    assert [v["version"] for v in got["versions"]] == [1]
    assert got["versions"][0]["document"]["rules"][0]["rate"] == "0.20"


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.replace('rate: "0.20"', 'rate: "1.20"'), "rules[0].rate"),
    (lambda d: d.replace("kind: upfront", "kind: bonus"), "rules[0].kind"),
    (lambda d: d.replace("base: acv, ", ""), "rules[0].base"),
    (lambda d: d.replace('rate: "0.20"', "rate: 0.2"), "rules[0].rate"),
    (lambda d: d.replace("currency: USD", "currency: XYZ"), "currency"),
])
async def test_an_invalid_plan_is_refused_naming_the_field(client, change, field):
    plan_id = uid("plan")
    doc = change(SIMPLE_PLAN.format(plan_id=plan_id))
    r = await client.put(f"/v1/plans/{plan_id}/versions/1", content=doc.encode(), headers=YAML)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


async def test_enrolment_checks_the_partner_type_and_overrides(client):
    plan_id = uid("plan")
    r = await client.put(f"/v1/plans/{plan_id}/versions/1",
                         content=SIMPLE_PLAN.format(plan_id=plan_id).encode(), headers=YAML)
    assert r.status_code == 201, r.text
    p = uid("P")
    r = await client.put(f"/v1/partners/{p}", json={"type": "referral", "plan_id": plan_id})
    assert r.status_code == 422 and r.json()["field"] == "type", r.text
    r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": plan_id,
                                                   "overrides": {"nope": {"rate": "0.1"}}})
    assert r.status_code == 422 and r.json()["field"] == "overrides.nope"
    r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": plan_id,
                                                   "overrides": {"anchor": {"rate": "2"}}})
    assert r.status_code == 422 and r.json()["field"] == "overrides.anchor.rate"
    r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": uid("nope")})
    assert r.status_code == 422 and r.json()["field"] == "plan_id"
    r = await client.put(f"/v1/partners/{p}", json={"type": "reseller", "plan_id": plan_id,
                                                   "overrides": {"anchor": {"rate": "0.25"}}})
    assert r.status_code == 201
    assert (await client.get(f"/v1/partners/{p}")).json()["overrides"] == {"anchor": {"rate": "0.25"}}


def test_cli_publishes_a_plan_file(settings, tmp_path):
    plan_id = uid("cli")
    good = tmp_path / "plan.yaml"
    good.write_text(SIMPLE_PLAN.format(plan_id=plan_id))
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIMPLE_PLAN.format(plan_id=plan_id).replace("version: 1", "version: 2")
                   .replace('rate: "0.20"', 'rate: "7"'))
    env = {**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", "plans", "publish", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    first, second, wrong = cli(str(good)), cli(str(good)), cli(str(bad))
    assert first.returncode == 0 and "published" in first.stdout, first.stderr
    assert second.returncode == 0 and "unchanged" in second.stdout
    assert wrong.returncode == 2 and "rules[0].rate" in wrong.stderr
