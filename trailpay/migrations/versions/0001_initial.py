"""Initial schema: journal, dead letters, plans, partners, attribution, postings, balances.

Revision ID: 0001
Revises:
"""

from trailpay.migrations.sql import run_sql_beside

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    raise NotImplementedError("trailpay does not drop its books; restore from backup instead")
