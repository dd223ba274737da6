"""Prometheus metrics, named once for every service (trailpay_* prefix, base units)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter(
    "trailpay_events_received_total", "Events received, by intake and type", ["intake", "type"])
EVENTS_ACCEPTED = Counter(
    "trailpay_events_accepted_total", "Events accepted, by intake and type", ["intake", "type"])
EVENTS_REJECTED = Counter(
    "trailpay_events_rejected_total", "Events rejected, by intake and reason", ["intake", "reason"])
JOURNAL_APPENDS = Counter(
    "trailpay_journal_appends_total", "Rows appended to the journal, by type", ["type"])
JOURNAL_DUPLICATES = Counter(
    "trailpay_journal_duplicates_total", "Redelivered events acknowledged and ignored")
POSTINGS = Counter(
    "trailpay_postings_total", "Posting legs written, by rule kind and bucket", ["rule_kind", "bucket"])
DEAD_LETTERS = Counter(
    "trailpay_dead_letters_total", "Messages dead-lettered, by stage and reason", ["stage", "reason"])
ENTRIES_PUBLISHED = Counter(
    "trailpay_ledger_entries_published_total", "Attributed entries published to trailpay.ledger")
OUTBOX_READS = Counter(
    "trailpay_outbox_reads_total",
    "Outbox publisher reads, by outbox and source: rows handed over in memory by this "
    "process's writer, or read back from the table", ["outbox", "source"])
PAYOUTS = Counter(
    "trailpay_payouts_total",
    "Payouts created (in_payout) and settled (paid, failed), by status and currency",
    ["status", "currency"])
PAYOUT_RUNS = Counter(
    "trailpay_payout_runs_requested_total",
    "Payout runs requested, one per partner and as-of date (a payout.run_requested produced; "
    "asking again is a journal duplicate but counts here), by origin: http or scheduler",
    ["origin"])
BALANCES = Gauge(
    "trailpay_balances",
    "Every partner's balances summed, by bucket and currency, in major units; read from the "
    "balances projection every BALANCES_METRIC_SECONDS by the accrual service (each replica "
    "reports the same sum: aggregate with max)", ["bucket", "currency"])
DISPUTES = Counter("trailpay_disputes_total", "Disputes opened and resolved", ["event"])
REFOLDS = Counter(
    "trailpay_refolds_total",
    "Times a partner's history folded again because a late entry sorted before it")
REFOLDED_ENTRIES = Counter(
    "trailpay_refolded_entries_total", "Entries folded again for late entries, in all")
CONSUMER_LAG = Gauge(
    "trailpay_consumer_lag", "Messages behind the high-water mark", ["consumer", "topic", "partition"])
POISON_RECORDS = Counter(
    "trailpay_poison_records_total",
    "Records the consumer's handler failed on alone, after one retry, with the database and "
    "broker up: dead-lettered (stage ledger or accrual, reason poison) and skipped", ["service"])
STALLED_SECONDS = Gauge(
    "trailpay_stalled_seconds",
    "Seconds the consumer has been retrying failed batches or records without progress "
    "(0 while it progresses)", ["service"])
CONSECUTIVE_FAILURES = Gauge(
    "trailpay_consumer_consecutive_failures",
    "Consecutive failures of the batch or record the consumer is retrying; /readyz reports a "
    "stall at CONSUMER_STALL_FAILURES", ["service"])
BATCH_SIZE = Histogram(
    "trailpay_batch_size", "Records per consumer batch", ["consumer"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000))
BATCH_SECONDS = Histogram(
    "trailpay_batch_processing_seconds", "Time to process one consumer batch", ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
HOT_READS = Counter(
    "trailpay_gateway_hot_reads_total",
    "Statement and balance reads answered by the gateway's hot path (services/gateway/hot_reads.py)",
    ["route"])
HTTP_SECONDS = Histogram(
    "trailpay_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
