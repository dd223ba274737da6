"""The balances gauge: every partner's balances summed by bucket and currency.

SREs watch the programme's totals (earned, held, payable, in payout, paid) on the
Grafana board. The sum is read from the balances projection on a timer, never on a
scrape: one GROUP BY over the table once a minute costs little, while /metrics must
stay cheap however often Prometheus (or a person) asks. Each accrual replica reads the
same sum, so the board aggregates with max. The gauge holds a float: a metric, not money.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

from trailpay import metrics
from trailpay.adapters.db import Connection, Engine, raw

log = logging.getLogger("trailpay.balance_totals")

RETRY = 60.0


async def totals(conn: Connection) -> dict[tuple[str, str], Decimal]:
    """(bucket, currency) -> the sum of every partner's balance in it."""
    pg = await raw(conn)
    rows = await pg.fetch("SELECT bucket, currency, sum(amount) FROM balances "
                          "GROUP BY bucket, currency")
    return {(r[0], r[1]): r[2] for r in rows}


_exported: set[tuple[str, str]] = set()


def export_totals(sums: dict[tuple[str, str], Decimal]) -> None:
    """Set the gauge to these sums; a (bucket, currency) no longer there is dropped."""
    for (bucket, currency), amount in sums.items():
        metrics.BALANCES.labels(bucket, currency).set(float(amount))
    for gone in _exported - sums.keys():
        with contextlib.suppress(KeyError):
            metrics.BALANCES.remove(*gone)
    _exported.clear()
    _exported.update(sums)


async def run(engine: Engine, every: float, stop: asyncio.Event) -> None:
    """Refresh the gauge every `every` seconds until stopped (0: never)."""
    if every <= 0:
        return
    while not stop.is_set():
        wait = every
        try:
            async with engine.connect() as conn:
                export_totals(await totals(conn))
        except Exception:  # noqa: BLE001 - a metric: keep the service running, retry
            log.exception("reading the balance totals failed; retrying in %.0f s", RETRY)
            wait = max(every, RETRY)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
