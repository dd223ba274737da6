"""Kafka plumbing: topics, producers and consumer-group consumers (aiokafka).

Offsets are only a hint here: every consumer stores its progress in
PostgreSQL with its effect, so a broker rebuilt empty replays harmlessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from trailpay import metrics
from trailpay.settings import Settings

log = logging.getLogger(__name__)

Producer = AIOKafkaProducer  # what services hold and hand back here, without importing aiokafka


def all_topics(settings: Settings) -> list[str]:
    return [settings.topic_events, settings.topic_events_dlq, settings.topic_ledger,
            settings.topic_payouts, settings.topic_notifications]


async def ensure_topics(settings: Settings, attempts: int = 30) -> None:
    """Create trailpay's topics if missing; waits for the broker to come up."""
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in all_topics(settings) if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([
                        NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1)
                        for t in missing
                    ])
            return
        except TopicAlreadyExistsError:
            return
        except Exception as exc:  # noqa: BLE001 - broker not up yet: retry, then give up loudly
            if attempt == attempts - 1:
                raise
            log.info("waiting for Kafka at %s: %s", settings.kafka_bootstrap_servers, exc)
            await asyncio.sleep(1)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


_partitioner = DefaultPartitioner()


@lru_cache(maxsize=65_536)
def _partition_of(key: bytes, partitions: tuple[int, ...]) -> int:
    """The default partitioner's choice, remembered: its murmur2 is pure Python, and keys
    (partner and customer ids) repeat (4% of the ledger's CPU before this cache)."""
    return _partitioner(key, list(partitions), list(partitions))


async def send_all(producer: AIOKafkaProducer, topic: str,
                   messages: Sequence[tuple[bytes, bytes]]) -> None:
    """Produce (key, value) messages and wait until the broker has them all.

    One record batch per partition instead of one `send` per message (aiokafka's
    per-message path was 13% of the ledger's CPU). Each key goes to the partition
    the default partitioner (murmur2, as Kafka's Java client) picks, so a key's
    messages stay in order on one partition however they were produced.

    Every record of one call carries the call's time as its Kafka timestamp: sent together,
    they are stamped alike, and a consumer aligning partitions by timestamp
    (trailpay.adapters.align) reads no order into the loop over partitions below.
    """
    if not messages:
        return
    stamp = int(time.time() * 1000)
    partitions = tuple(sorted(await producer.partitions_for(topic)))
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in messages:
        by_partition[_partition_of(key, partitions)].append((key, value))
    futures = []
    for partition, items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=stamp) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=stamp) is None:
                    raise ValueError(f"a message of {len(value)} bytes exceeds the batch size")
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)


def producer(settings: Settings) -> AIOKafkaProducer:
    # Tansu has no idempotent producer; dedup is ours (journal on (source, id)).
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=False,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=None,
    )


def consumer(settings: Settings, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.consumer_batch_max,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(settings.consumer_session_timeout_ms // 3, 300),
    )


_lag_exported: dict[str, set[tuple[str, str]]] = {}  # group -> (topic, partition) exported


async def lags(c: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Records on the broker not yet handed over (high-water mark minus position), per
    assigned partition whose high-water mark and position are known."""
    out = {}
    for tp in c.assignment():
        hw = c.highwater(tp)
        if hw is None:
            continue
        with contextlib.suppress(Exception):  # no position yet (a rebalance): unknown
            out[tp] = max(hw - await c.position(tp), 0)
    return out


async def record_lag(c: AIOKafkaConsumer, group: str) -> None:
    """Export consumer lag per partition (high-water mark minus position); partitions a
    rebalance took away are dropped, so no stale lag stays behind for another consumer's
    partitions."""
    assigned = c.assignment()
    for tp, lag in (await lags(c)).items():
        metrics.CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)
    now = {(tp.topic, str(tp.partition)) for tp in assigned}
    for topic, partition in _lag_exported.get(group, set()) - now:
        with contextlib.suppress(KeyError):
            metrics.CONSUMER_LAG.remove(group, topic, partition)
    _lag_exported[group] = now


async def ping(p: AIOKafkaProducer, topic: str) -> bool:
    """Readiness: the broker answers a metadata request for our topic."""
    try:
        return bool(await asyncio.wait_for(p.partitions_for(topic), 2.0))
    except Exception:  # noqa: BLE001 - readiness reports, never raises
        return False
