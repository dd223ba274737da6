"""accrual_applied.arrival: the batch (transaction) in which an entry arrived, which a
rebuild needs to fold late entries in the same groups as the live accrual did.

Revision ID: 0017
Revises: 0016
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("ALTER TABLE accrual_applied DROP COLUMN arrival")
