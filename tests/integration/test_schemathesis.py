"""Schemathesis over the whole published OpenAPI (issue 14), with an admin key and with a
partner-bound key: no server error and no failing check, for valid and invalid requests.

Kept short for the default suite: a few examples per operation and generation mode,
derandomized (the same cases every run), no shrinking. The cases run in a thread
against the in-process stack, so the event loop keeps serving them.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import setup_programme, uid
from trailpay.adapters import api_keys

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))

# Checks left out, each with its reason (none may hide a server error):
EXCLUDED: dict[str, str] = {
    # Every operation takes a bearer key. Schemathesis's ignored_auth check sends the
    # request without it and expects a 401, which the gateway answers; but it also treats
    # the partner-bound key's 404 for another partner as "auth ignored". The access matrix
    # test (test_access_matrix.py) checks every route x scope x bound/unbound answer.
    "ignored_auth": "covered route by route by test_access_matrix.py",
    # Positive data is what the OpenAPI's schemas allow; some rules are not schema rules
    # and answer 422 naming the field: a deal's shares sum to 1, an event's `data` follows
    # schemas/events/<type>.json for its `type`, a dispute names a statement line of that
    # partner, a payout run's as_of is not in the future, trailpay's own command types
    # come only from its API. Server errors are still checked (not_a_server_error).
    "positive_data_acceptance": "cross-field and cross-resource rules answer 422 by name",
}


def run_schemathesis(url: str, token: str) -> tuple[int, list[str]]:
    """(cases run, failures) over every operation of the published OpenAPI."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    excluded = [getattr(schemathesis.checks, name) for name in EXCLUDED]
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             op.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @settings(max_examples=MAX_EXAMPLES * 2, derandomize=True, database=None,
                  deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case) -> None:
            nonlocal ran
            ran += 1
            case.call_and_validate(base_url=url, headers=headers, excluded_checks=excluded,
                                   timeout=30)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect them all
            failures.append(f"{op.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    return ran, failures


@pytest.mark.parametrize("bound", [False, True], ids=["admin key", "partner-bound key"])
async def test_schemathesis_finds_no_server_error_and_no_failing_check(client, engine, stack,
                                                                      bound):
    token = ADMIN_TOKEN
    if bound:
        _, (p,) = await setup_programme(client, 1)
        async with engine.begin() as conn:
            _, token = await api_keys.create(conn, uid("schemathesis"), [
                "events:write", "statements:read", "payables:read"], p)
    ran, failures = await asyncio.to_thread(run_schemathesis, stack, token)
    assert ran > 50
    assert failures == [], "\n\n".join(failures)
