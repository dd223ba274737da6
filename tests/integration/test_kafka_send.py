"""Batched producing on the real broker: every message arrives, on the partition a plain
`send` of the same key picks, in order per key."""

from __future__ import annotations

import secrets

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from trailpay.adapters.kafka import send_all


async def _drain(broker: str, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got: list = []
    try:
        for _ in range(100):
            polled = await consumer.getmany(timeout_ms=200)
            got += [r for rs in polled.values() for r in rs]
            if len(got) >= n:
                break
    finally:
        await consumer.stop()
    return got


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

    got = await _drain(broker, topic, len(messages) + 1)
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
