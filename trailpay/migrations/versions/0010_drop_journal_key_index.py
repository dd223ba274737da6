"""Drop the journal's unused (key, seq) index.

Revision ID: 0010
Revises: 0009
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("CREATE INDEX journal_key ON journal (key, seq)")
