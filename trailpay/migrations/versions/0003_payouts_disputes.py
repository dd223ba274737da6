"""Payouts, disputes, the accrual's outbox and the gateway's command requests.

Revision ID: 0003
Revises: 0002
"""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(Path(__file__).with_suffix(".sql").read_text()))


def downgrade() -> None:
    for table in ("command_requests", "outbox", "disputes", "payouts"):
        op.drop_table(table)
