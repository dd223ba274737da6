"""plan_versions.retroactive and rerated_facts: whether publishing a version re-rated facts
already recorded, for the change log (GET /v1/plans/{id}/changes).

Revision ID: 0019
Revises: 0018
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("ALTER TABLE plan_versions DROP COLUMN retroactive, DROP COLUMN rerated_facts")
