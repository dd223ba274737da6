"""The floor: what the design requires of each event, each part measured alone (issue 15).

BENCHMARKS.md once added these up by hand; the bench now measures them in the same run as
the pipeline, so that the ratio of the two is free of this machine's day-to-day swings:

- PostgreSQL's CPU in the Kafka phase (the journal, outbox, applied entries, posting
  legs with their indexes and double-entry trigger, projections): the database work the
  design asks for, taken from the pipeline itself (no lighter way to write it exists);
- the bench's producer and the broker, from the same phase;
- producing the second hop (the ledger's entries into trailpay.ledger, design §1): the
  raw produce limit, per entry;
- consuming two hops (events into the ledger, entries into the accrual): the raw
  consume+parse limit, per event and per entry;
- CloudEvents decoding (JSON, envelope and data schemas, the fact, the canonical body);
- the entry's JSON out of the ledger and back into the accrual;
- the journal's hashes (the event body's and the chain's, design §4);
- the plan engine (attribution and the fold), on one core;
- the posting legs' COPY text.

Until 2026-12-05 the floor counted one consume per event for each hop and left out the
ledger's produce and the hashes, as the hand sum in BENCHMARKS.md had;
`pipeline_to_old_floor` is the ratio to that sum, so that ratios across the change compare.

The pipeline's CPU per event (every process) divided by their sum is the overhead of
everything else: the glue, the event loop, the services' Kafka clients, state documents.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bench.expected import attribute
from bench.raw import messages
from trailpay.adapters.cloudevents import decode_kafka
from trailpay.adapters.fastjson import entry_json
from trailpay.adapters.posting_store import posting_copy
from trailpay.core.attribution import entry_from_dict
from trailpay.core.fold import fold_partners
from trailpay.core.journal import GENESIS, body_hash, chain_hash

SAMPLE = 30_000  # events timed for each codec part


def _cpu_us(fn, n: int) -> float:
    """CPU µs an event of `fn()` over n events (best of three: the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best * 1e6 / n


def codec_parts(events: list[dict[str, Any]], books) -> dict[str, float]:
    """µs an event of the parts measured here, over the first SAMPLE events in time order."""
    sample = sorted(events, key=lambda e: e["time"])[:SAMPLE]
    n = len(sample)
    msgs = [value for _, value in messages(sample)]
    entries = attribute(enumerate(sample, start=1))
    groups = [g for f in fold_partners(entries, books).values() for g in f.groups]
    bodies = [decode_kafka(v, []).raw for v in msgs]

    def hashes() -> None:
        prev = GENESIS
        for n, body in enumerate(bodies, start=1):
            prev = chain_hash(prev, "trailpay.events/0", n, body_hash(body))

    return {
        "floor_hashes_us": _cpu_us(hashes, n),
        "floor_decode_us": _cpu_us(lambda: [decode_kafka(v, []) for v in msgs], n),
        "floor_entry_json_us": _cpu_us(
            lambda: [entry_from_dict(orjson.loads(entry_json(e))) for e in entries], n),
        "floor_copy_text_us": _cpu_us(lambda: posting_copy(groups), n),
    }


def floor(result: dict[str, Any], parts: dict[str, float]) -> dict[str, Any]:
    """The floor's sum and the pipeline's ratio to it, from a bench result that holds the
    raw limits, the engine and the Kafka phase's CPU seconds."""
    events = result["programme"]["kafka_events"]
    cpu = result["e2e_kafka_cpu_seconds"]
    out = dict(parts)
    out["floor_postgres_us"] = cpu.get("postgres", 0.0) * 1e6 / events
    out["floor_producer_broker_us"] = (cpu.get("bench", 0.0) + cpu.get("tansu", 0.0)) * 1e6 / events
    per_event = result["kafka_entries"] / events  # entries an event makes
    out["floor_consume_two_hops_us"] = (1 + per_event) * 1e6 / result["kafka_consume_msgs_per_s"]
    out["floor_produce_entries_us"] = per_event * 1e6 / result["kafka_produce_msgs_per_s"]
    out["floor_engine_us"] = 1e6 / result["engine_cpu_events_per_s"]
    out["floor_us_per_event"] = sum(v for k, v in out.items() if k.endswith("_us"))
    pipeline = result["e2e_kafka_cpu_us_per_event"]
    out["pipeline_to_floor"] = pipeline / out["floor_us_per_event"]
    old = (out["floor_us_per_event"] - out["floor_hashes_us"] - out["floor_produce_entries_us"]
           - out["floor_consume_two_hops_us"] + 2e6 / result["kafka_consume_msgs_per_s"])
    out["pipeline_to_old_floor"] = pipeline / old
    return out


def report(r: dict[str, Any]) -> str:
    names = {"floor_postgres_us": "PostgreSQL (its CPU in the Kafka phase)",
             "floor_producer_broker_us": "the bench's producer and the broker",
             "floor_consume_two_hops_us": "consuming two hops (raw consume+parse)",
             "floor_produce_entries_us": "producing the entries (raw produce)",
             "floor_hashes_us": "journal hashes (body and chain)",
             "floor_decode_us": "CloudEvents decode", "floor_entry_json_us": "entry JSON out and in",
             "floor_engine_us": "plan engine (attribution and fold), one core",
             "floor_copy_text_us": "posting legs' COPY text"}
    lines = [f"  {label:<46} {r[k]:7.1f} µs" for k, label in names.items() if k in r]
    lines.append(f"  {'sum (the floor)':<46} {r['floor_us_per_event']:7.1f} µs; pipeline "
                 f"{r['floor_us_per_event'] * r['pipeline_to_floor']:.1f} µs = "
                 f"{r['pipeline_to_floor']:.2f} × the floor (target ≤ 1.15); "
                 f"{r['pipeline_to_old_floor']:.2f} × the floor as counted before 2026-12-05")
    return "floor per Kafka event, each part alone in this run:\n" + "\n".join(lines)
