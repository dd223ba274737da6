"""Partner state split: partner-level JSON plus one row per customer book.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute(
        "UPDATE partner_state s SET state = s.state || jsonb_build_object('customers', "
        "coalesce((SELECT jsonb_object_agg(c.customer_id, c.book) FROM partner_customer_state c "
        "WHERE c.partner_id = s.partner_id), '{}'::jsonb))")
    op.drop_table("partner_customer_state")
