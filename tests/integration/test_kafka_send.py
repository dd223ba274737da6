"""Kafka plumbing on the real broker: batched producing (every message arrives, on the
partition a plain `send` of the same key picks, in order per key) and consumer lag
across a rebalance."""

from __future__ import annotations

import asyncio
import secrets

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.helpers import drain
from trailpay.adapters.kafka import send_all


async def test_send_all_delivers_every_message_on_the_default_partition(broker):
    topic = f"test.send_all.{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, enable_idempotence=False,
                                max_batch_size=16_384)  # small: several batches per partition
    await producer.start()
    try:
        messages = [(f"P{i % 37}".encode(), b'{"n": %d, "pad": "%s"}' % (i, b"x" * 200))
                    for i in range(3000)]
        await send_all(producer, topic, messages)
        reference = await (await producer.send(topic, key=b"P5", value=b"ref"))
    finally:
        await producer.stop()

    got = await drain(broker, topic, len(messages) + 1)
    assert len(got) == len(messages) + 1
    assert sorted(r.value for r in got if r.value != b"ref") == sorted(v for _, v in messages)
    partitions = {r.key: r.partition for r in got}
    assert len({r.partition for r in got}) > 1
    assert all(partitions[r.key] == r.partition for r in got)  # one partition per key
    assert partitions[b"P5"] == reference.partition  # the partition `send` picks for the key
    for key in {k for k, _ in messages}:  # per key, in the order given
        sent = [v for k, v in messages if k == key]
        assert [r.value for r in sorted(got, key=lambda r: r.offset)
                if r.key == key and r.value != b"ref"] == sent


async def _lag_partitions(label: str) -> set[str]:
    from prometheus_client import REGISTRY

    return {s.labels["partition"] for f in REGISTRY.collect() if f.name == "trailpay_consumer_lag"
            for s in f.samples if s.labels.get("consumer") == label}


async def test_consumer_lag_follows_a_rebalance(broker):
    """Lag is exported for the partitions a consumer holds, and dropped for those a
    rebalance gives to another member of its group."""
    from trailpay.adapters.kafka import record_lag

    topic, group = f"test.lag.{secrets.token_hex(4)}", f"lag-{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, enable_idempotence=False)
    await producer.start()
    await send_all(producer, topic, [(f"k{i}".encode(), b"x") for i in range(40)])
    await producer.stop()

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(topic, bootstrap_servers=broker, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)

    first = member()
    await first.start()
    second = None
    try:
        for _ in range(100):
            await first.getmany(timeout_ms=100)
            if len(first.assignment()) == 4:
                break
        await record_lag(first, "lag-test-first")
        assert await _lag_partitions("lag-test-first") == {"0", "1", "2", "3"}

        second = member()
        await second.start()
        for _ in range(200):
            await asyncio.gather(first.getmany(timeout_ms=100), second.getmany(timeout_ms=100))
            if first.assignment() and second.assignment() and \
                    len(first.assignment()) + len(second.assignment()) == 4:
                break
        kept = {str(tp.partition) for tp in first.assignment()}
        assert 0 < len(kept) < 4
        await record_lag(first, "lag-test-first")
        assert await _lag_partitions("lag-test-first") == kept
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
