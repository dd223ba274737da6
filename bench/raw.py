"""This machine's raw limits, measured in the same run as trailpay itself.

Kafka: aiokafka producing realistic event messages (the programme's own
CloudEvents) to a scratch topic with trailpay's producer settings, then one
consumer reading them back and parsing each value (orjson). PostgreSQL:
journal-like rows (same columns, constraints and index as `journal`) written
with batched multi-row INSERTs (unnest arrays, 1000 rows a statement, a commit
each) and with COPY (5000 rows a COPY, a commit each).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from trailpay.adapters.kafka import send_all

SCRATCH_DDL = """
CREATE TABLE {name} (
    seq           bigserial PRIMARY KEY,
    stream        text        NOT NULL,
    stream_pos    bigint      NOT NULL,
    source        text        NOT NULL,
    event_id      text        NOT NULL,
    type          text        NOT NULL,
    key           text        NOT NULL,
    effective_at  timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    body          text        NOT NULL,
    body_hash     text        NOT NULL,
    prev_hash     text        NOT NULL,
    row_hash      text        NOT NULL,
    UNIQUE (source, event_id),
    UNIQUE (stream, stream_pos)
);
CREATE INDEX {name}_key ON {name} (key, seq);
"""
COLUMNS = ("stream", "stream_pos", "source", "event_id", "type", "key", "effective_at", "body",
           "body_hash", "prev_hash", "row_hash")


def messages(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) as trailpay's intake puts them on trailpay.events."""
    out = []
    for e in events:
        d = e["data"]
        key = d.get("customer_id") or d.get("partner_id")
        out.append((key.encode(), orjson.dumps(e, option=orjson.OPT_SORT_KEYS)))
    return out


def journal_rows(events: list[dict[str, Any]]) -> list[tuple]:
    rows, prev = [], "0" * 64
    for n, e in enumerate(events, 1):
        body = orjson.dumps(e, option=orjson.OPT_SORT_KEYS)
        h = hashlib.sha256(body).hexdigest()
        row = hashlib.sha256(f"{prev}|raw/0|{n}|{h}".encode()).hexdigest()
        d = e["data"]
        rows.append(("raw/0", n, e["source"], e["id"], e["type"],
                     d.get("customer_id") or d.get("partner_id"),
                     datetime.fromisoformat(e["time"].upper()), body.decode(), h, prev, row))
        prev = row
    return rows


SEND_CHUNK = 5_000  # messages per send_all: one record batch per partition


async def kafka_limits(bootstrap: str, msgs: list[tuple[bytes, bytes]],
                       partitions: int = 4) -> dict[str, float]:
    topic = f"bench.raw.{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                                linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.perf_counter()
        for i in range(0, len(msgs), SEND_CHUNK):  # as trailpay's outboxes produce
            await send_all(producer, topic, msgs[i:i + SEND_CHUNK])
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}.g",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=2000, fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        seen, parsed_bytes = 0, 0
        started = None
        deadline = time.monotonic() + 300
        while seen < len(msgs) and time.monotonic() < deadline:
            polled = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in polled.values():
                if started is None:
                    started = time.perf_counter()
                for r in records:
                    parsed_bytes += len(orjson.loads(r.value)["id"])
                seen += len(records)
        consume_s = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
    return {"kafka_produce_msgs_per_s": len(msgs) / produce_s,
            "kafka_consume_msgs_per_s": seen / consume_s if consume_s else 0.0,
            "kafka_msgs": len(msgs),
            "kafka_msg_bytes_avg": sum(len(v) for _, v in msgs) / len(msgs)}


async def pg_limits(dsn: str, rows: list[tuple], insert_batch: int = 1000,
                    copy_batch: int = 5000) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        results: dict[str, float] = {}
        for mode in ("insert", "copy"):
            name = f"bench_raw_{mode}_{secrets.token_hex(3)}"
            await conn.execute(SCRATCH_DDL.format(name=name))
            try:
                started = time.perf_counter()
                if mode == "insert":
                    sql = (f"INSERT INTO {name} ({', '.join(COLUMNS)}) SELECT * FROM unnest("
                           "$1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], "
                           "$6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], "
                           "$11::text[])")
                    for i in range(0, len(rows), insert_batch):
                        chunk = rows[i:i + insert_batch]
                        async with conn.transaction():
                            await conn.execute(sql, *[list(c) for c in zip(*chunk, strict=True)])
                else:
                    for i in range(0, len(rows), copy_batch):
                        async with conn.transaction():
                            await conn.copy_records_to_table(name, records=rows[i:i + copy_batch],
                                                             columns=COLUMNS)
                seconds = time.perf_counter() - started
                key = "pg_batch_insert_rows_per_s" if mode == "insert" else "pg_copy_rows_per_s"
                results[key] = len(rows) / seconds
            finally:
                await conn.execute(f"DROP TABLE {name}")
        results["pg_rows"] = len(rows)
        return results
    finally:
        await conn.close()
