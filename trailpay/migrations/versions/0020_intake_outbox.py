"""intake: events the gateway answered 202, kept until the journal (or the dead letters)
has them, so that a broker restart loses none of them.

Revision ID: 0020
Revises: 0019
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("DROP TABLE intake")
