"""Drop ledger_entries_partner, an index no query used.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("CREATE INDEX ledger_entries_partner ON ledger_entries (partner_id, id)")
