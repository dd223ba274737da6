"""Drop accrual_applied (partner_id, applied_order): the partner version no longer reads it.

Revision ID: 0011
Revises: 0010
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("CREATE INDEX accrual_applied_partner ON accrual_applied (partner_id, applied_order)")
