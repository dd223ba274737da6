"""balance_months: the balances' movement per effective month; partial posting indexes.

Revision ID: 0012
Revises: 0011
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("DROP INDEX postings_partner_pending")
    op.execute("DROP INDEX postings_partner_time")
    op.execute("CREATE INDEX postings_partner_time ON postings (partner_id, effective_at)")
    op.execute("DROP TABLE balance_months")
