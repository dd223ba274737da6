"""Payouts, disputes, the accrual's outbox and the gateway's command requests.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    for table in ("command_requests", "outbox", "disputes", "payouts"):
        op.drop_table(table)
