"""Every route × every scope × unbound and partner-bound keys, each answer checked against
the table below (issue 14). The routes come from the app itself: a route added without
an entry here fails `test_the_table_covers_every_route`.

One world: partners `mine` and `theirs` on one plan, each with a deal, a payout and a
dispute. A bound key is bound to `mine`. A case names a request and the answer it gets
from a key holding the scope it needs, unbound and bound; a key without that scope gets
403, no key 401. Bodies are chosen so that an allowed call answers the same every time
(it refers to nothing, or it is an event whose id repeats: the journal keeps it once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import (
    cloud_event, deal, eventually, post_events, setup_programme, uid,
)
from trailpay.adapters import api_keys
from trailpay.adapters.api_keys import SCOPES

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
EVENTS, PLANS, PARTNERS = "events:write", "plans:write", "partners:write"
STATEMENTS, PAYABLES, PAYOUTS = "statements:read", "payables:read", "payouts:write"
PUBLIC = frozenset()
MONTH, AS_OF = "2026-02", "2026-03-31"


@dataclass(frozen=True)
class Case:
    method: str
    route: str                     # the route's path template, as the app has it
    path: str                      # the concrete path asked for ({mine}, {theirs}... filled)
    need: frozenset[str]           # scopes that let a key through (admin always does)
    unbound: int                   # the answer to an unbound key holding one of them
    bound: int                     # the answer to a key bound to `mine` holding one of them
    body: Any = None
    bound_need: frozenset[str] | None = None  # when bound keys pass on other scopes
    headers: dict[str, str] = field(default_factory=dict)

    def expected(self, who: tuple[str, bool] | None) -> int:
        if not self.need:
            return self.unbound
        if who is None:
            return 401
        scope, bound = who
        need = self.bound_need if bound and self.bound_need is not None else self.need
        if scope != "admin" and scope not in need:
            return 403
        return self.bound if bound else self.unbound


def cases(w: dict[str, str]) -> list[Case]:
    mine, theirs = w["mine"], w["theirs"]

    def ev(name: str, type_: str, data: dict) -> dict:  # a fixed id: the journal keeps one
        return cloud_event(type_, data, id_=f"matrix-{w['run']}-{name}")

    def events(name, type_, data, unbound, bound):
        return Case("POST", "/v1/events", "/v1/events", frozenset({EVENTS}), unbound, bound,
                    body=ev(name, type_, data))

    one = frozenset
    return [
        # --- events: a bound key posts only about its own partner --------------------------
        events("referral-mine", "referral.qualified", {"partner_id": mine, "lead_id": "L1"},
               202, 202),
        events("referral-theirs", "referral.qualified", {"partner_id": theirs, "lead_id": "L2"},
               202, 404),
        events("adjustment-mine", "adjustment.posted", {
            "partner_id": mine, "currency": "USD", "amount": "1.00", "reason": "matrix",
            "approved_by": "ops"}, 202, 403),
        events("usage-mine", "usage.reported", {
            "customer_id": w["my_customer"], "currency": "USD", "metric": "seats",
            "quantity": "1", "revenue": "10.00", "period_start": "2026-02-01",
            "period_end": "2026-02-28"}, 202, 403),
        events("deal-mine", "deal.closed", {**deal(w["new_customer"], [(mine, "1")]),
                                            "deal_id": f"D-{w['run']}-1"}, 202, 202),
        events("deal-split", "deal.closed", {**deal(uid("C"), [(mine, "0.5"), (theirs, "0.5")]),
                                             "deal_id": f"D-{w['run']}-2"}, 202, 404),
        events("deal-their-customer", "deal.closed", {
            **deal(w["their_customer"], [(mine, "1")]), "kind": "expansion",
            "deal_id": f"D-{w['run']}-3"}, 202, 403),
        events("confirmation", "payout.confirmed", {"payout_id": "po-nobody", "reference": "r"},
               202, 403),
        # --- plans -----------------------------------------------------------------------
        Case("PUT", "/v1/plans/{plan_id}/versions/{version}", "/v1/plans/plan-x/versions/1",
             one({PLANS}), 422, 403, body={"plan_id": "other", "version": 1}),
        Case("GET", "/v1/plans/{plan_id}", f"/v1/plans/{w['plan_id']}", one({STATEMENTS}),
             200, 200),
        # Explainer and change log: readable like the plan; a bound key sees its own type's
        # terms (mine is a reseller) and another type's answers 404.
        Case("GET", "/v1/plans/{plan_id}/versions/{version}/explainer",
             f"/v1/plans/{w['plan_id']}/versions/1/explainer", one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/plans/{plan_id}/versions/{version}/explainer",
             f"/v1/plans/{w['plan_id']}/versions/1/explainer?partner_type=integrator",
             one({STATEMENTS}), 200, 404),
        Case("GET", "/v1/plans/{plan_id}/changes", f"/v1/plans/{w['plan_id']}/changes",
             one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/plans/{plan_id}/changes",
             f"/v1/plans/{w['plan_id']}/changes?partner_type=integrator", one({STATEMENTS}),
             200, 404),
        # --- partners ---------------------------------------------------------------------
        Case("PUT", "/v1/partners/{partner_id}", f"/v1/partners/{mine}", one({PARTNERS}),
             422, 403, body={"type": "reseller", "plan_id": "no-such-plan"}),
        Case("PUT", "/v1/partners/{partner_id}", f"/v1/partners/{theirs}", one({PARTNERS}),
             422, 404, body={"type": "reseller", "plan_id": "no-such-plan"}),
        Case("GET", "/v1/partners/{partner_id}", f"/v1/partners/{mine}", one({STATEMENTS}),
             200, 200),
        Case("GET", "/v1/partners/{partner_id}", f"/v1/partners/{theirs}", one({STATEMENTS}),
             200, 404),
        Case("GET", "/v1/partners/{partner_id}/balances", f"/v1/partners/{mine}/balances",
             one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/partners/{partner_id}/balances", f"/v1/partners/{theirs}/balances",
             one({STATEMENTS}), 200, 404),
        Case("GET", "/v1/partners/{partner_id}/statements/{month}",
             f"/v1/partners/{mine}/statements/{MONTH}", one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/partners/{partner_id}/statements/{month}",
             f"/v1/partners/{theirs}/statements/{MONTH}", one({STATEMENTS}), 200, 404),
        Case("GET", "/v1/partners/{partner_id}/forecast", f"/v1/partners/{mine}/forecast",
             one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/partners/{partner_id}/forecast", f"/v1/partners/{theirs}/forecast",
             one({STATEMENTS}), 200, 404),
        Case("GET", "/v1/partners/{partner_id}/dashboard", f"/v1/partners/{mine}/dashboard",
             one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/partners/{partner_id}/dashboard", f"/v1/partners/{theirs}/dashboard",
             one({STATEMENTS}), 200, 404),
        # --- the programme: ops work, never a partner's ----------------------------------------
        Case("GET", "/v1/programme/economics",
             f"/v1/programme/economics?plan_id={w['plan_id']}", one({PARTNERS}), 200, 403),
        Case("GET", "/v1/programme/dashboard",
             f"/v1/programme/dashboard?plan_id={w['plan_id']}", one({PARTNERS}), 200, 403),
        # --- payouts ----------------------------------------------------------------------
        Case("POST", "/v1/payout-runs", "/v1/payout-runs", one({PAYOUTS}), 422, 403,
             body={"as_of": AS_OF, "partner_ids": ["P-nobody"]}),
        Case("GET", "/v1/payout-runs/{run_id}", f"/v1/payout-runs/run-{AS_OF}",
             one({PAYABLES}), 200, 200),
        Case("GET", "/v1/payables", "/v1/payables", one({PAYABLES}), 200, 200),
        Case("GET", "/v1/payables", f"/v1/payables?partner_id={theirs}", one({PAYABLES}),
             200, 404),
        Case("GET", "/v1/payouts/{payout_id}", f"/v1/payouts/{w['my_payout']}",
             one({PAYABLES}), 200, 200),
        Case("GET", "/v1/payouts/{payout_id}", f"/v1/payouts/{w['their_payout']}",
             one({PAYABLES}), 200, 404),
        Case("POST", "/v1/payouts/{payout_id}/confirmation", "/v1/payouts/po-nobody/confirmation",
             one({PAYOUTS}), 404, 403, body={"status": "paid", "reference": "r"}),
        # --- disputes: a bound key opens them on its own lines with statements:read ------------
        Case("POST", "/v1/disputes", "/v1/disputes", one({PARTNERS}), 422, 422,
             body={"partner_id": mine, "posting_id": "no-such-line", "reason": "r"},
             bound_need=one({PARTNERS, STATEMENTS})),
        Case("POST", "/v1/disputes", "/v1/disputes", one({PARTNERS}), 422, 404,
             body={"partner_id": theirs, "posting_id": "no-such-line", "reason": "r"},
             bound_need=one({PARTNERS, STATEMENTS})),
        Case("GET", "/v1/disputes", "/v1/disputes", one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/disputes", f"/v1/disputes?partner_id={theirs}", one({STATEMENTS}),
             200, 404),
        Case("GET", "/v1/disputes/{dispute_id}", f"/v1/disputes/{w['my_dispute']}",
             one({STATEMENTS}), 200, 200),
        Case("GET", "/v1/disputes/{dispute_id}", f"/v1/disputes/{w['their_dispute']}",
             one({STATEMENTS}), 200, 404),
        Case("POST", "/v1/disputes/{dispute_id}/resolution", "/v1/disputes/dsp-nobody/resolution",
             one({PARTNERS}), 404, 403, body={"outcome": "rejected"}),
        # --- what-if simulations: partner ops (plans:write), never a partner-bound key ------
        Case("POST", "/v1/simulations", "/v1/simulations", one({PLANS}), 422, 403,
             body={"candidate": {"plan_id": "x"}}),
        Case("GET", "/v1/simulations/{simulation_id}", "/v1/simulations/sim-nobody",
             one({PLANS}), 404, 403),
        # --- pilots: partner ops (plans:write), never a partner-bound key ------------------
        Case("PUT", "/v1/pilots/{pilot_id}", "/v1/pilots/pilot-nobody", one({PLANS}), 422, 403,
             body={"control_plan": "x"}),
        Case("GET", "/v1/pilots/{pilot_id}", "/v1/pilots/pilot-nobody", one({PLANS}), 404, 403),
        Case("GET", "/v1/pilots/{pilot_id}/report", "/v1/pilots/pilot-nobody/report",
             one({PLANS}), 404, 403),
        Case("GET", "/v1/pilots/{pilot_id}/report", "/v1/pilots/pilot-nobody/report",
             one({PLANS}), 404, 403, headers={"Accept": "text/html"}),  # the report's page
        Case("POST", "/v1/pilots/{pilot_id}/rollout", "/v1/pilots/pilot-nobody/rollout",
             one({PLANS}), 404, 403, body={}),
        # --- open to all ------------------------------------------------------------------
        *(Case("GET", p, p, PUBLIC, 200, 200) for p in (
            "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc",
            "/docs/oauth2-redirect")),
    ]


def test_the_table_covers_every_route(settings):
    from services.gateway.main import create_app

    app = create_app(settings)
    routes = {(m, r.path) for r in iter_route_contexts(app.routes) for m in (r.methods or ())
              if m != "HEAD"}
    published = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    w = {k: "x" for k in ("mine", "theirs", "run", "my_customer", "new_customer",
                          "their_customer", "plan_id", "my_payout", "their_payout",
                          "my_dispute", "their_dispute")}
    table = {(c.method, c.route) for c in cases(w)}
    assert routes - table == set(), "routes without an entry in the access matrix"
    assert table - routes == set(), "entries in the access matrix for routes that are gone"
    assert published <= routes


@pytest.fixture(scope="module")
async def world(stack, engine) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack, timeout=30.0,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as ops:
        plan_id, (mine, theirs) = await setup_programme(ops, 2)
        w = {"mine": mine, "theirs": theirs, "plan_id": plan_id, "run": uid("m"),
             "my_customer": uid("C"), "their_customer": uid("C"), "new_customer": uid("C")}
        await post_events(ops, [
            cloud_event("deal.closed", deal(w["my_customer"], [(mine, "1")], acv="5000.00")),
            cloud_event("deal.closed", deal(w["their_customer"], [(theirs, "1")],
                                            acv="5000.00"))])

        async def line(p):
            st = (await ops.get(f"/v1/partners/{p}/statements/{MONTH}")).json()
            return next((ln["posting_id"] for ln in st.get("lines", []) if ln["posting_id"]),
                        None)
        lines = {p: await eventually(lambda p=p: line(p)) for p in (mine, theirs)}
        r = await ops.post("/v1/payout-runs", json={"as_of": AS_OF, "partner_ids": [mine, theirs]})
        assert r.status_code == 202, r.text

        async def payouts():
            items = (await ops.get("/v1/payables", params={"limit": 1000})).json()["items"]
            got = {i["partner_id"]: i["payout_id"] for i in items if i["partner_id"] in lines}
            return got if len(got) == 2 else None
        paid = await eventually(payouts)
        w["my_payout"], w["their_payout"] = paid[mine], paid[theirs]
        for p, name in ((mine, "my_dispute"), (theirs, "their_dispute")):
            r = await ops.post("/v1/disputes", json={"partner_id": p, "posting_id": lines[p],
                                                     "reason": "matrix"})
            assert r.status_code == 202, r.text
            w[name] = r.json()["dispute_id"]

        async def disputes_visible():
            return all([(await ops.get(f"/v1/disputes/{w[n]}")).status_code == 200
                        for n in ("my_dispute", "their_dispute")])
        await eventually(disputes_visible)

        keys: dict[tuple[str, bool], str] = {}
        async with engine.begin() as conn:
            for scope in SCOPES:
                for bound in (False, True):
                    _, token = await api_keys.create(conn, uid("matrix"), [scope],
                                                     mine if bound else None)
                    keys[(scope, bound)] = token
        w["keys"] = keys
        yield w


async def test_every_route_every_scope_bound_and_unbound(stack, world):
    whos: list[tuple[str, tuple[str, bool] | None, dict[str, str]]] = [
        ("no key", None, {}),
        ("admin token", ("admin", False), {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        *((f"{'bound' if bound else 'unbound'} {scope}", (scope, bound),
           {"Authorization": f"Bearer {token}"}) for (scope, bound), token
          in world["keys"].items())]
    wrong: list[str] = []
    asked = 0
    async with httpx.AsyncClient(base_url=stack, timeout=30.0) as http:
        for case in cases(world):
            for name, who, auth in whos:
                r = await http.request(case.method, case.path, json=case.body,
                                       headers={**auth, **case.headers})
                asked += 1
                want = case.expected(who)
                where = f"{case.method} {case.path} as {name}"
                if r.status_code != want:
                    wrong.append(f"{where}: {r.status_code}, expected {want}: {r.text[:160]}")
                    continue
                if want >= 400:
                    problem = r.json() if r.headers.get("content-type", "").startswith(
                        PROBLEM) else {}
                    if problem.get("status") != want or not problem.get("detail"):
                        wrong.append(f"{where}: not problem JSON: {r.headers} {r.text[:160]}")
                    if want == 401 and r.headers.get("www-authenticate") != "Bearer":
                        wrong.append(f"{where}: 401 without WWW-Authenticate: Bearer")
    assert not wrong, f"{len(wrong)} of {asked} answers differ:\n" + "\n".join(wrong)
    assert asked == len(cases(world)) * (2 + 2 * len(SCOPES))
