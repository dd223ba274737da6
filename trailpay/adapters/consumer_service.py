"""The shape both consumer services share: ops endpoints, broker and database, the loops.

The ops server starts first, so /healthz answers while the consumer is still joining
its group (a slow join is not a dead process); /readyz says ready only once the
database and the broker both answer, and not while the consumer is stalled on a batch
or record (trailpay.adapters.isolation). Each service supplies its batch handler and
any extra loops (outbox publishers, the payout scheduler) through `wire`, and what
to do with a poison record (dead-letter it) through `poison`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from trailpay.adapters import kafka
from trailpay.adapters.align import Aligner
from trailpay.adapters.consume import Handler, Poison, consume, lanes
from trailpay.adapters.db import create_engine, ping
from trailpay.adapters.isolation import Stalls
from trailpay.adapters.ops_server import ops_app, ops_server
from trailpay.adapters.supervise import until_stopped
from trailpay.settings import Settings

Wire = Callable[[AsyncEngine, AIOKafkaProducer], tuple[Handler, list[Coroutine[Any, Any, Any]]]]
PoisonFactory = Callable[[AsyncEngine, AIOKafkaProducer], Poison]


async def _join(task: Awaitable[Any]) -> None:
    await task


async def _close(log: logging.Logger, what: str, closing: Awaitable[Any]) -> None:
    """Close a Kafka client at shutdown. With the broker already gone, aiokafka's close
    re-raises its own fetch task's cancellation; that must not turn a clean stop into
    a traceback (a cancellation of this task itself still propagates)."""
    try:
        await closing
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s close was interrupted (broker gone?)", what)
    except Exception as exc:  # noqa: BLE001 - shutting down: report and go on
        log.warning("%s close failed: %s", what, exc)


async def _keep_topics(settings: Settings, stop: asyncio.Event, log: logging.Logger,
                       every: float = 5.0) -> None:
    """Create trailpay's topics again if the broker lost them (memory storage restarted
    empty): until they exist, consumers fetch nothing and producers wait for metadata."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(kafka.ensure_topics(settings, attempts=1), every)
        except Exception as exc:  # noqa: BLE001 - broker away: try again next time
            log.info("broker unavailable for the topic check: %s: %s", type(exc).__name__, exc)


async def run_consumer_service(settings: Settings, stop: asyncio.Event, *, name: str, topic: str,
                               group: str, default_port: int, wire: Wire,
                               poison: PoisonFactory, aligner: Aligner | None = None) -> None:
    """With an aligner, the records of the owned partitions are handed over in the order
    they were sent (trailpay.adapters.align)."""
    log = logging.getLogger(f"trailpay.{name}")
    engine = create_engine(settings)
    producer = kafka.producer(settings)
    started = asyncio.Event()
    stalls: Stalls | None = None  # the lanes' stalls, once they run

    async def healthy() -> bool:
        return await ping(engine) and await kafka.ping(producer, topic)

    async def ready() -> dict[str, bool]:
        return {"database": await ping(engine),
                "broker": started.is_set() and await kafka.ping(producer, topic),
                "consuming": stalls is None or not stalls.stalled}

    def stall_report() -> dict[str, Any] | None:
        return None if stalls is None else stalls.report()

    server = ops_server(ops_app(name, ready, stall_report), settings.gateway_host,
                        settings.metrics_port or default_port)
    serving = asyncio.create_task(server.serve())
    consumer = None
    try:
        await kafka.ensure_topics(settings)
        await producer.start()
        consumer = kafka.consumer(settings, topic, group)
        await consumer.start()
        started.set()
        handle, loops = wire(engine, producer)
        isolated, stalls = lanes(name, handle, poison(engine, producer), healthy,
                                 settings.consumer_lanes, settings.consumer_stall_failures)
        log.info("%s consuming %s as %s", name, topic, group)
        await until_stopped(stop, [
            consume(consumer, group, isolated, stop, settings.consumer_poll_ms,
                    settings.consumer_batch_max, aligner),
            *loops,
            _keep_topics(settings, stop, log),
            _join(serving),
        ], on_stop=lambda: setattr(server, "should_exit", True))
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        if consumer is not None:
            await _close(log, "consumer", consumer.stop())
        await _close(log, "producer", producer.stop())
        await engine.dispose()
