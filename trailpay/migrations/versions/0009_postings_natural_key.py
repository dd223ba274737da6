"""Postings keyed by (group_id, leg); the surrogate id goes.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("ALTER TABLE postings DROP CONSTRAINT postings_pkey")
    op.execute("ALTER TABLE postings ADD CONSTRAINT postings_group_leg UNIQUE (group_id, leg)")
    op.execute("ALTER TABLE postings ADD COLUMN id bigserial PRIMARY KEY")
