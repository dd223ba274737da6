"""Outbox rows carry their writer's transaction id, and publishers send them in
(xid, id) order up to the oldest running transaction: writers no longer serialise on a
lock from their insert to their commit.

Revision ID: 0021
Revises: 0020
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("ALTER TABLE outbox_cursors DROP COLUMN last_xid")
    for table in ("ledger_entries", "outbox"):
        op.execute(f"DROP INDEX {table}_xid_order")
        op.execute(f"ALTER TABLE {table} DROP COLUMN xid")
