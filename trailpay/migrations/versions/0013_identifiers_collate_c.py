"""Identifiers and codes compare byte by byte: COLLATE "C" on every id, key and code column.

Every index trailpay writes on the hot path is keyed by text ids (postings by group id
and partner, balances by partner, bucket and currency, the journal by source and event
id...). Under a database's linguistic collation each comparison in those btrees goes
through strcoll; under "C" it is a memcmp. Re-inserting 120,000 of the benchmark's
posting legs (trigger, indexes, WAL) took 1,120-1,195 ms under C.UTF-8 and 985-998 ms
under "C"; under en_US.UTF-8 the difference is larger. Ids have no linguistic order:
for UTF-8 text, "C" orders by code point, as C.UTF-8 does. Free text and documents
(explanations, reasons, names, payloads) keep the database's collation.

Both directions come from one table of columns, so they cannot drift apart. Changing a
column's collation rewrites its indexes, not the table.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_CHAR3 = "char(3)"
COLUMNS: dict[str, dict[str, str]] = {
    "journal": dict.fromkeys(
        ("stream", "source", "event_id", "type", "key", "body_hash", "prev_hash", "row_hash"),
        "text"),
    "journal_streams": dict.fromkeys(("stream", "last_hash"), "text"),
    "dead_letters": dict.fromkeys(("stage", "source", "event_id", "type", "field", "topic"),
                                  "text"),
    "plan_versions": dict.fromkeys(("plan_id", "doc_hash"), "text"),
    "partner_enrollments": dict.fromkeys(("partner_id", "type", "plan_id"), "text"),
    "partners": dict.fromkeys(("partner_id", "type", "plan_id"), "text"),
    "customers": dict.fromkeys(("customer_id", "deal_id", "currency"), "text"),
    "parked": {"customer_id": "text"},
    "ledger_entries": dict.fromkeys(("entry_id", "partner_id", "topic"), "text"),
    "outbox": dict.fromkeys(("topic", "key"), "text"),
    "outbox_cursors": dict.fromkeys(("box", "topic"), "text"),
    "command_requests": dict.fromkeys(("event_id", "request_hash"), "text"),
    "accrual_applied": dict.fromkeys(("entry_id", "partner_id", "outcome"), "text"),
    "partner_state": {"partner_id": "text"},
    "partner_customer_state": dict.fromkeys(("partner_id", "customer_id"), "text"),
    "postings": {**dict.fromkeys(("group_id", "entry_id", "event_id", "event_type", "partner_id",
                                  "customer_id", "deal_id", "account", "bucket", "rule_id",
                                  "rule_kind", "plan_id"), "text"),
                 "currency": _CHAR3},
    "balances": {"partner_id": "text", "currency": _CHAR3, "bucket": "text"},
    "balance_months": {"partner_id": "text", "currency": _CHAR3, "bucket": "text"},
    "api_keys": dict.fromkeys(("key_id", "secret_hash", "partner_id"), "text"),
    "payouts": {**dict.fromkeys(("payout_id", "run_id", "partner_id", "status"), "text"),
                "currency": _CHAR3},
    "disputes": dict.fromkeys(("dispute_id", "partner_id", "posting_id", "opened_by", "status",
                               "resolved_by"), "text"),
}


def _collate(collation: str) -> None:
    for table, columns in COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(
            f'ALTER COLUMN {name} TYPE {type_} COLLATE {collation}'
            for name, type_ in columns.items()))


def upgrade() -> None:
    _collate('"C"')


def downgrade() -> None:
    _collate('"default"')
