"""API keys.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.drop_table("api_keys")
