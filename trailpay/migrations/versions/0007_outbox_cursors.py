"""Outboxes published by a cursor per (outbox, topic); outbox rows append-only.

Revision ID: 0007
Revises: 0006
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    for table in ("ledger_entries", "outbox"):
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute(f"ALTER TABLE {table} ADD COLUMN published boolean NOT NULL DEFAULT false")
        op.execute(f"UPDATE {table} t SET published = true FROM outbox_cursors c "
                   f"WHERE c.box = '{table}' AND c.topic = t.topic AND t.id <= c.last_id")
    op.execute("CREATE INDEX ledger_entries_unpublished ON ledger_entries (topic, id) "
               "WHERE NOT published")
    op.execute("CREATE INDEX outbox_unpublished ON outbox (topic, id) WHERE NOT published")
    op.drop_table("outbox_cursors")
