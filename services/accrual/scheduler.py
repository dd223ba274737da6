"""The payout scheduler: at start-up and once a day, request the runs that cadences make due.

Which partners are due is decided by the pure `due_runs`; the events are the same
ones POST /v1/payout-runs produces, so scaled-out accrual instances (each running
this loop) or an operator asking too only make journal duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from trailpay.adapters import payout_runs
from trailpay.adapters.db import Engine
from trailpay.adapters.kafka import Producer

log = logging.getLogger("trailpay.accrual.scheduler")

RUN_AT = timedelta(minutes=5)  # after midnight UTC, once the previous day has ended
RETRY = 60.0


async def schedule_once(engine: Engine, producer: Producer, topic: str,
                        today: date) -> list[tuple[str, date]]:
    async with engine.connect() as conn:
        runs = await payout_runs.due(conn, today)
    if runs:
        await payout_runs.request(producer, topic, runs, "scheduler")
        log.info("requested %d payout runs (as of %s)", len(runs),
                 ", ".join(sorted({d.isoformat() for _, d in runs})))
    return runs


def seconds_until_next(now: datetime) -> float:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max((tomorrow + RUN_AT - now).total_seconds(), 1.0)


async def run(engine: Engine, producer: Producer, topic: str, stop: asyncio.Event,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    while not stop.is_set():
        wait = RETRY
        try:
            await schedule_once(engine, producer, topic, clock().date())
            wait = seconds_until_next(clock())
        except Exception:  # noqa: BLE001 - keep scheduling; retry in a minute
            log.exception("payout scheduling failed; retrying in %.0f s", RETRY)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
