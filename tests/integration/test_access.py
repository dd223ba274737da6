"""Access: every endpoint's scope (401 without or with a wrong token, 403 without the scope,
both problem JSON), and a partner-bound key that sees only its own partner (404 otherwise)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.helpers import (
    balances, cloud_event, deal, eventually, post_events, setup_programme, uid,
)
from trailpay.adapters import api_keys
from trailpay.adapters.api_keys import SCOPES

pytestmark = pytest.mark.integration

# (method, path, json body, the scope it needs). Bodies are valid enough to pass the
# authorisation but refer to nothing, so an allowed call changes nothing.
ENDPOINTS = [
    ("POST", "/v1/events", {"not": "an event"}, "events:write"),
    ("PUT", "/v1/plans/plan-x/versions/1", {"plan_id": "other"}, "plans:write"),
    ("GET", "/v1/plans/plan-x", None, "statements:read"),
    ("PUT", "/v1/partners/P-x", {"type": "reseller", "plan_id": "no-such-plan"}, "partners:write"),
    ("GET", "/v1/partners/P-x", None, "statements:read"),
    ("GET", "/v1/partners/P-x/balances", None, "statements:read"),
    ("GET", "/v1/partners/P-x/statements/2026-03", None, "statements:read"),
    ("POST", "/v1/payout-runs", {"as_of": "2026-03-31", "partner_ids": ["P-nobody"]},
     "payouts:write"),
    ("GET", "/v1/payout-runs/run-2026-03-31", None, "payables:read"),
    ("GET", "/v1/payables", None, "payables:read"),
    ("GET", "/v1/payouts/po-x", None, "payables:read"),
    ("POST", "/v1/payouts/po-x/confirmation", {"status": "paid", "reference": "r"},
     "payouts:write"),
    ("POST", "/v1/disputes", {"partner_id": "P-nobody", "posting_id": "g", "reason": "r"},
     "partners:write"),
    ("GET", "/v1/disputes", None, "statements:read"),
    ("GET", "/v1/disputes/dsp-x", None, "statements:read"),
    ("POST", "/v1/disputes/dsp-x/resolution", {"outcome": "rejected"}, "partners:write"),
]


async def key(engine, scopes: list[str], partner_id: str | None = None) -> dict[str, str]:
    async with engine.begin() as conn:
        _, token = await api_keys.create(conn, uid("key"), scopes, partner_id)
    return {"Authorization": f"Bearer {token}"}


async def call(stack: str, method: str, path: str, body, headers: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack, timeout=30.0) as c:
        return await c.request(method, path, json=body, headers=headers)


def problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.request.method, r.request.url.path, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
async def test_every_endpoint_needs_a_token_and_its_scope(stack, engine, method, path, body, scope):
    r = await call(stack, method, path, body, {})
    problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    problem(await call(stack, method, path, body, {"Authorization": "Bearer tp_nope_nope"}), 401)
    others = [s for s in SCOPES if s not in (scope, "admin")]
    body403 = problem(await call(stack, method, path, body, await key(engine, others)), 403)
    assert scope in body403["detail"]
    for allowed in (await key(engine, [scope]), await key(engine, ["admin"])):
        r = await call(stack, method, path, body, allowed)
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text)


async def test_a_revoked_key_is_refused(stack, engine):
    async with engine.begin() as conn:
        created, token = await api_keys.create(conn, uid("key"), ["statements:read"])
        await api_keys.revoke(conn, created.key_id)
    problem(await call(stack, "GET", "/v1/disputes", None, {"Authorization": f"Bearer {token}"}),
            401)


async def test_a_partner_bound_key_sees_only_its_own_partner(client, stack, engine):
    plan_id = uid("plan")
    r = await client.put(f"/v1/plans/{plan_id}/versions/1", headers={"Content-Type": "application/yaml"},
                         content=(f"plan_id: {plan_id}\nversion: 1\neffective_from: '2025-01-01'\n"
                                  "currency: USD\nrules:\n  - {id: anchor, kind: upfront, base: acv, "
                                  "rate: '0.10'}\npayout: {minimum: '100.00', hold_days: 0}\n").encode())
    assert r.status_code == 201, r.text
    mine, theirs = uid("P"), uid("P")
    for p in (mine, theirs):
        assert (await client.put(f"/v1/partners/{p}", json={
            "type": "reseller", "plan_id": plan_id})).status_code == 201
    await post_events(client, [
        cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv="5000.00"),
                    time_="2026-02-01T10:00:00Z") for p in (mine, theirs)])

    async def lines(p):
        st = (await client.get(f"/v1/partners/{p}/statements/2026-02")).json()
        return [ln["posting_id"] for ln in st["lines"] if ln["posting_id"]]
    my_line, their_line = (await eventually(lambda: lines(mine)))[0], \
        (await eventually(lambda: lines(theirs)))[0]
    assert (await client.post("/v1/payout-runs", json={
        "as_of": "2026-03-31", "partner_ids": [mine, theirs]})).status_code == 202

    async def paid_out():
        items = (await client.get("/v1/payables", params={"limit": 1000})).json()["items"]
        ours = {i["partner_id"]: i["payout_id"] for i in items if i["partner_id"] in (mine, theirs)}
        return ours if len(ours) == 2 else None
    payout_of = await eventually(paid_out)
    r = await client.post("/v1/disputes", json={"partner_id": theirs, "posting_id": their_line,
                                                "reason": "ops check"})
    assert r.status_code == 202, r.text
    their_dispute = r.json()["dispute_id"]

    bound = await key(engine, ["statements:read", "payables:read"], mine)
    # Its own partner: readable.
    for path in (f"/v1/partners/{mine}", f"/v1/partners/{mine}/balances",
                 f"/v1/partners/{mine}/statements/2026-02", f"/v1/payouts/{payout_of[mine]}"):
        assert (await call(stack, "GET", path, None, bound)).status_code == 200, path
    # Another partner's data: 404, as if it did not exist.
    for path in (f"/v1/partners/{theirs}", f"/v1/partners/{theirs}/balances",
                 f"/v1/partners/{theirs}/statements/2026-02", f"/v1/payouts/{payout_of[theirs]}",
                 f"/v1/disputes?partner_id={theirs}", f"/v1/payables?partner_id={theirs}"):
        problem(await call(stack, "GET", path, None, bound), 404)

    async def their_dispute_is_open():
        return (await client.get(f"/v1/disputes/{their_dispute}")).status_code == 200
    await eventually(their_dispute_is_open)
    problem(await call(stack, "GET", f"/v1/disputes/{their_dispute}", None, bound), 404)
    # Payables and a run's payouts: only its own.
    items = (await call(stack, "GET", "/v1/payables", None, bound)).json()["items"]
    assert [i["payout_id"] for i in items] == [payout_of[mine]]
    run = (await call(stack, "GET", "/v1/payout-runs/run-2026-03-31", None, bound)).json()
    assert {p["partner_id"] for p in run["payouts"]} == {mine}

    # Disputes: it opens its own (statements:read suffices for a bound key) and reads only those.
    problem(await call(stack, "POST", "/v1/disputes", {
        "partner_id": theirs, "posting_id": their_line, "reason": "x"}, bound), 404)
    problem(await call(stack, "POST", "/v1/disputes", {
        "partner_id": mine, "posting_id": their_line, "reason": "not my line"}, bound), 422)
    r = await call(stack, "POST", "/v1/disputes", {
        "partner_id": mine, "posting_id": my_line, "reason": "rate too low",
        "dispute_id": uid("dsp")}, bound)
    assert r.status_code == 202, r.text
    mine_dispute = r.json()["dispute_id"]

    async def listed():
        r = await call(stack, "GET", "/v1/disputes", None, bound)
        return r.json()["items"] or None
    assert [d["dispute_id"] for d in await eventually(listed)] == [mine_dispute]
    # ...but it cannot resolve disputes, run payouts or confirm them, whatever its scopes.
    strong = await key(engine, ["partners:write", "payouts:write", "statements:read"], mine)
    for method, path, body in (
            ("POST", f"/v1/disputes/{mine_dispute}/resolution", {"outcome": "accepted"}),
            ("POST", "/v1/payout-runs", {"as_of": "2026-03-31"}),
            ("POST", f"/v1/payouts/{payout_of[mine]}/confirmation",
             {"status": "paid", "reference": "r"})):
        assert "partner-bound" in problem(await call(stack, method, path, body, strong), 403)[
            "detail"]
    # An unbound key without partners:write cannot open disputes (an ERP reading statements).
    reader = await key(engine, ["statements:read", "payables:read"])
    problem(await call(stack, "POST", "/v1/disputes", {
        "partner_id": mine, "posting_id": my_line, "reason": "x"}, reader), 403)


async def test_a_partner_bound_key_with_write_scopes_acts_on_its_own_partner_only(
        client, stack, engine):
    """Issue 14: a bound key holding write scopes changed another partner's enrolment and
    payment details, enrolled partners, published plans and posted events that credited or
    debited other partners (an adjustment.posted made another partner's payable negative)."""
    plan_id, (mine, theirs) = await setup_programme(client)
    their_customer = uid("C")
    await post_events(client, [cloud_event("deal.closed", deal(their_customer, [(theirs, "1")],
                                                               acv="5000.00"))])

    async def credited(partner_id):
        b = await balances(client, partner_id)
        return b if any(v != "0.00" for k, v in b.items() if k != "currency") else None
    before = await eventually(lambda: credited(theirs))
    their_terms = (await client.get(f"/v1/partners/{theirs}")).json()

    everything = [s for s in SCOPES if s != "admin"]
    for scopes in (everything, ["admin"]):
        bound = await key(engine, scopes, mine)
        # Enrolment: another partner's (or a new one) answers 404, its own 403.
        for p, status in ((theirs, 404), (uid("P"), 404), (mine, 403)):
            problem(await call(stack, "PUT", f"/v1/partners/{p}", {
                "type": "reseller", "plan_id": plan_id,
                "payment": {"iban": "XX00 ATTACKER"}}, bound), status)
        # Plans: ops work.
        r = await call(stack, "PUT", f"/v1/plans/{uid('plan')}/versions/1",
                       {"plan_id": "x", "version": 1}, bound)
        assert "partner-bound" in problem(r, 403)["detail"]

        def ev(type_, data):
            return [cloud_event(type_, data)]
        refused = [
            # types a bound key never posts, even about itself: 403 naming `type`
            (ev("adjustment.posted", {"partner_id": theirs, "currency": "USD",
                                      "amount": "-900.00", "reason": "x", "approved_by": "me"}),
             403, "type"),
            (ev("adjustment.posted", {"partner_id": mine, "currency": "USD", "amount": "900.00",
                                      "reason": "x", "approved_by": "me"}), 403, "type"),
            (ev("refund.issued", {"customer_id": their_customer, "currency": "USD",
                                  "amount": "5000.00", "invoice_id": "I1"}), 403, "type"),
            (ev("payout.confirmed", {"payout_id": "po-x", "reference": "r"}), 403, "type"),
            # another partner named anywhere: 404, as if it did not exist
            (ev("referral.qualified", {"partner_id": theirs, "lead_id": "L1"}), 404,
             "data.partner_id"),
            (ev("comarketing.completed", {"partner_id": theirs, "activity": "a",
                                          "currency": "USD", "spend": "10.00"}), 404,
             "data.partner_id"),
            (ev("deal.closed", deal(uid("C"), [(mine, "0.5"), (theirs, "0.5")])), 404,
             "data.partners[1].partner_id"),
            (ev("deal.closed", deal(uid("C"), [(theirs, "1")])), 404,
             "data.partners[0].partner_id"),
            # a deal taking over another partner's customer
            (ev("deal.closed", deal(their_customer, [(mine, "1")])), 403, "data.customer_id"),
        ]
        for events, status, field in refused:
            r = await call(stack, "POST", "/v1/events", events[0], bound)
            assert problem(r, status)["field"] == field, (events[0]["type"], r.text)
        # A batch is all or nothing; the culprit is named by its index.
        r = await call(stack, "POST", "/v1/events", [
            cloud_event("referral.qualified", {"partner_id": mine, "lead_id": "L2"}),
            cloud_event("referral.qualified", {"partner_id": theirs, "lead_id": "L3"})], bound)
        assert problem(r, 404)["field"] == "[1].data.partner_id"

    # What it may do: facts about its own partner, and deals for new customers of its own.
    bound = await key(engine, ["events:write"], mine)
    own_deal = cloud_event("deal.closed", deal(uid("C"), [(mine, "1")], acv="1000.00"))
    for event in (own_deal, cloud_event("referral.qualified", {"partner_id": mine,
                                                               "lead_id": uid("L")})):
        r = await call(stack, "POST", "/v1/events", event, bound)
        assert r.status_code == 202, r.text
    r = await call(stack, "POST", "/v1/events", cloud_event("usage.reported", {
        "customer_id": own_deal["data"]["customer_id"], "currency": "USD", "metric": "seats",
        "quantity": "1", "revenue": "10.00", "period_start": "2026-02-01",
        "period_end": "2026-02-28"}), bound)
    assert problem(r, 403)["field"] == "type"  # customer facts come from billing

    await eventually(lambda: credited(mine))
    assert await balances(client, theirs) == before
    assert (await client.get(f"/v1/partners/{theirs}")).json() == their_terms
