"""The journal replayed into fresh projections equals the live balances to the cent, in one
process and split by partner across worker processes that share the rebuild's snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.integration.helpers import cloud_event, deal, eventually, post_events, setup_programme, uid
from trailpay.adapters import rebuild as rebuilding
from trailpay.adapters.db import raw

pytestmark = pytest.mark.integration


async def _caught_up(engine, partners: list[str], at_least: int) -> bool:
    """These partners have at least `at_least` entries, and every entry is applied."""
    async with engine.connect() as conn:
        pg = await raw(conn)
        mine, entries, applied = await pg.fetchrow(
            "SELECT (SELECT count(*) FROM ledger_entries WHERE partner_id = ANY($1::text[])), "
            "(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM accrual_applied a "
            "JOIN ledger_entries e ON e.entry_id = a.entry_id)",
            partners)
        return mine >= at_least and entries == applied


async def _rebuild(engine, workers: int) -> rebuilding.Rebuild:
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return await rebuilding.rebuild(conn, check=True, workers=workers, parallel_from=0)


async def test_rebuild_equals_live_in_one_process_and_in_two(client, engine, settings):
    _, (p1, p2) = await setup_programme(client)
    events = []
    for n in range(6):
        customer = uid("C")
        events.append(cloud_event("deal.closed", deal(customer, [(p1, "0.7"), (p2, "0.3")],
                                                      acv=f"{40000 + 1000 * n}.00"),
                                  time_=f"2026-0{n + 1}-02T09:00:00Z"))
        events.append(cloud_event("subscription.churned", {
            "customer_id": customer, "effective_date": f"2026-0{n + 1}-20", "reason": "budget"},
            time_=f"2026-0{n + 1}-20T09:00:00Z"))
    await post_events(client, events)
    await eventually(lambda: _caught_up(engine, [p1, p2], len(events) * 2))  # 2 partners each

    one = await _rebuild(engine, workers=1)
    two = await _rebuild(engine, workers=2)
    assert one.differences == [] and two.differences == []
    assert one.balances == two.balances and one.months == two.months
    assert {k for k in one.months if k[0] == p1} and all(k[1].day == 1 for k in one.months)
    assert one.entries == two.entries > 0 and one.applied == two.applied
    assert any(k[0] == p1 and k[2] == "clawed_back" for k in two.balances), \
        sorted(k for k in two.balances if k[0] == p1)

    env = {**os.environ, "DATABASE_URL": settings.database_url}
    cli = subprocess.run([sys.executable, "-m", "services.cli", "rebuild", "--check",
                          "--workers", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "balances and monthly sums equal the live projections to the cent" in cli.stdout

    # A cent off in one month of the statements' projection is a difference, by its key.
    key = min(k for k in one.months if k[0] == p1)
    bump = ("UPDATE balance_months SET amount = amount + $6 WHERE partner_id = $1 AND month = $2 "
            "AND currency = $3 AND bucket = $4 AND available_on = $5")
    async with engine.begin() as conn:
        await (await raw(conn)).execute(bump, *key, Decimal("0.01"))
    try:
        off = await _rebuild(engine, workers=1)
        assert [(d[0], d[2] - d[1]) for d in off.differences] == [(key, Decimal("0.01"))]
    finally:
        async with engine.begin() as conn:
            await (await raw(conn)).execute(bump, *key, Decimal("-0.01"))


async def test_a_tampered_journal_body_fails_rebuild_check_by_name(client, engine, settings):
    """rebuild --check derives the entries again from the journal's bodies: a body changed
    by a superuser with the append-only trigger off fails it, naming the journal entry,
    as `audit verify` does (issue 14: it replayed the stored entries and rebuilt equal)."""
    _, (p1,) = await setup_programme(client, 1)
    event = cloud_event("deal.closed", deal(uid("C"), [(p1, "1")], acv="50000.00"))
    await post_events(client, [event])
    await eventually(lambda: _caught_up(engine, [p1], 1))
    env = {**os.environ, "DATABASE_URL": settings.database_url}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    async with engine.begin() as conn:
        pg = await raw(conn)
        seq, body = await pg.fetchrow("SELECT seq, body FROM journal WHERE event_id = $1",
                                      event["id"])
    tampered = body.replace('"acv":"50000.00"', '"acv":"90000.00"')
    assert tampered != body
    swap = ("ALTER TABLE journal DISABLE TRIGGER journal_append_only; "
            "UPDATE journal SET body = {} WHERE seq = {}; "
            "ALTER TABLE journal ENABLE TRIGGER journal_append_only")
    async with engine.begin() as conn:
        await (await raw(conn)).execute(swap.format("$$" + tampered + "$$", seq))
    try:
        check = cli("rebuild", "--check", "--workers", "1")
        assert check.returncode == 1, check.stdout + check.stderr
        named = [line for line in check.stdout.splitlines() if line.startswith("JOURNAL")]
        assert named and f"journal seq {seq} " in named[0] and event["id"] in named[0], named
        assert "acv" in named[0] or "data" in named[0], named
        audit = cli("audit", "verify")
        assert audit.returncode == 1 and "BROKEN" in audit.stdout, audit.stdout
    finally:
        async with engine.begin() as conn:
            await (await raw(conn)).execute(swap.format("$$" + body + "$$", seq))
    assert cli("rebuild", "--check", "--workers", "1").returncode == 0
