"""SQLAlchemy Core tables, mirroring migrations/versions/*.sql.

The migrations are the source of truth for DDL (triggers live there);
these objects exist to build queries. tests/integration/test_storage.py checks
that the two stay in step, collations included.
"""

from sqlalchemy import (
    CHAR, BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Integer, LargeBinary,
    MetaData, Numeric, SmallInteger, Table, Text, text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

metadata = MetaData()

# Identifiers and codes compare byte by byte (migration 0013): their btrees are the write
# path's hottest, and ids have no linguistic order. Free text and documents stay Text.
Id = Text(collation="C")
Code3 = CHAR(3, collation="C")  # ISO 4217 currency codes

journal = Table(
    "journal", metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("stream", Id, nullable=False),
    Column("stream_pos", BigInteger, nullable=False),
    Column("source", Id, nullable=False),
    Column("event_id", Id, nullable=False),
    Column("type", Id, nullable=False),
    Column("key", Id, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("body_hash", Id, nullable=False),
    Column("prev_hash", Id, nullable=False),
    Column("row_hash", Id, nullable=False),
)

journal_streams = Table(
    "journal_streams", metadata,
    Column("stream", Id, primary_key=True),
    Column("last_pos", BigInteger, nullable=False),
    Column("last_hash", Id, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("stage", Id, nullable=False),
    Column("source", Id),
    Column("event_id", Id),
    Column("type", Id),
    Column("field", Id),
    Column("reason", Text, nullable=False),
    Column("topic", Id),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("payload", Text, nullable=False),
    Column("raw", LargeBinary),  # the message's bytes as received (migration 0016)
)

plan_versions = Table(
    "plan_versions", metadata,
    Column("plan_id", Id, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("effective_from", Date, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("doc_hash", Id, nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    # Publishing it re-rated facts already recorded (migration 0019): the change log says so.
    Column("retroactive", Boolean, nullable=False, server_default=text("false")),
    Column("rerated_facts", Integer, nullable=False, server_default=text("0")),
)

partner_enrollments = Table(
    "partner_enrollments", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("journal_seq", BigInteger, primary_key=True),
    Column("type", Id, nullable=False),
    Column("plan_id", Id, nullable=False),
    Column("overrides", JSONB, nullable=False),
    Column("payment", JSONB),
)

partners = Table(
    "partners", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("type", Id, nullable=False),
    Column("plan_id", Id, nullable=False),
    Column("overrides", JSONB, nullable=False),
    Column("payment", JSONB),
    Column("journal_seq", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

customers = Table(
    "customers", metadata,
    Column("customer_id", Id, primary_key=True),
    Column("deal_id", Id, nullable=False),
    Column("currency", Id, nullable=False),
    Column("partners", JSONB, nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
)

parked = Table(
    "parked", metadata,
    Column("journal_seq", BigInteger, primary_key=True),
    Column("customer_id", Id, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("entry_id", Id, nullable=False, unique=True),
    Column("journal_seq", BigInteger, nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("topic", Id, nullable=False),
    Column("payload", Text, nullable=False),  # the JSON text the ledger wrote
)

outbox_cursors = Table(
    "outbox_cursors", metadata,
    Column("box", Id, primary_key=True),
    Column("topic", Id, primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

accrual_applied = Table(
    "accrual_applied", metadata,
    Column("entry_id", Id, primary_key=True),
    Column("partner_id", Id, nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    Column("applied_order", BigInteger, nullable=False),
    Column("outcome", Id, nullable=False),
    Column("arrival", BigInteger),  # the batch's transaction id (migration 0017)
)

partner_state = Table(
    "partner_state", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("state", JSON, nullable=False),  # json, not jsonb (migration 0015)
    Column("entries", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

partner_customer_state = Table(
    "partner_customer_state", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("customer_id", Id, primary_key=True),
    Column("book", JSON, nullable=False),
)

postings = Table(
    "postings", metadata,
    Column("group_id", Id, primary_key=True),
    Column("leg", SmallInteger, primary_key=True),
    Column("entry_id", Id, nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    Column("event_id", Id, nullable=False),
    Column("event_type", Id, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("customer_id", Id),
    Column("deal_id", Id),
    Column("account", Id, nullable=False),
    Column("bucket", Id, nullable=False),
    Column("currency", Code3, nullable=False),
    Column("amount", Numeric(20, 6), nullable=False),
    Column("available_on", Date),
    Column("rule_id", Id, nullable=False),
    Column("rule_kind", Id, nullable=False),
    Column("plan_id", Id),
    Column("plan_version", Integer),
    Column("base", Numeric),
    Column("rate", Numeric),
    Column("multiplier", Numeric),
    Column("share", Numeric),
    Column("unrounded", Numeric),
    Column("explanation", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

balances = Table(
    "balances", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("currency", Code3, primary_key=True),
    Column("bucket", Id, primary_key=True),
    Column("available_on", Date, primary_key=True),
    Column("amount", Numeric(20, 6), nullable=False),
)

balance_months = Table(  # balances' movement per effective month: statements' openings
    "balance_months", metadata,
    Column("partner_id", Id, primary_key=True),
    Column("month", Date, primary_key=True),
    Column("currency", Code3, primary_key=True),
    Column("bucket", Id, primary_key=True),
    Column("available_on", Date, primary_key=True),
    Column("amount", Numeric(20, 6), nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", Id, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Id, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("partner_id", Id),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

payouts = Table(
    "payouts", metadata,
    Column("payout_id", Id, primary_key=True),
    Column("run_id", Id, nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("currency", Code3, nullable=False),
    Column("amount", Numeric(20, 6), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("status", Id, nullable=False),
    Column("reference", Text),
    Column("journal_seq", BigInteger, nullable=False),
    Column("settled_seq", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
)

disputes = Table(
    "disputes", metadata,
    Column("dispute_id", Id, primary_key=True),
    Column("partner_id", Id, nullable=False),
    Column("posting_id", Id, nullable=False),
    Column("reason", Text, nullable=False),
    Column("opened_by", Id, nullable=False),
    Column("status", Id, nullable=False),
    Column("opened_seq", BigInteger, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_seq", BigInteger),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", Id),
    Column("adjustment", JSONB),
)

outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("topic", Id, nullable=False),
    Column("key", Id, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

intake = Table(  # the HTTP intake's outbox (adapters/intake.py, migration 0020)
    "intake", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source", Id, nullable=False),
    Column("event_id", Id, nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

command_requests = Table(
    "command_requests", metadata,
    Column("event_id", Id, primary_key=True),
    Column("request_hash", Id, nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

simulations = Table(  # what-if and shadow runs (migration 0018): apart from live
    "simulations", metadata,
    Column("simulation_id", Id, primary_key=True),
    Column("kind", Id, nullable=False),
    Column("pilot_id", Id),
    Column("request", JSONB, nullable=False),
    Column("status", Id, nullable=False),
    Column("entries_total", BigInteger),
    Column("entries_done", BigInteger, nullable=False),
    Column("applied", BigInteger),
    Column("refused", BigInteger),
    Column("error", Text),
    Column("seconds", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

simulation_results = Table(
    "simulation_results", metadata,
    Column("simulation_id", Id, ForeignKey("simulations.simulation_id", ondelete="CASCADE"),
           primary_key=True),
    Column("level", Id, primary_key=True),
    Column("key", Id, primary_key=True),
    Column("currency", Code3, primary_key=True),
    Column("figure", Id, primary_key=True),
    Column("actual", Numeric(20, 6), nullable=False),
    Column("candidate", Numeric(20, 6), nullable=False),
)

pilots = Table(
    "pilots", metadata,
    Column("pilot_id", Id, primary_key=True),
    Column("definition", JSONB, nullable=False),
    Column("arms", JSONB, nullable=False),
    Column("doc_hash", Id, nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    Column("rolled_out", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
