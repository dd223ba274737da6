"""ledger_entries.payload as text (the JSON the ledger wrote), not jsonb.

Revision ID: 0008
Revises: 0007
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("ALTER TABLE ledger_entries ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
