"""dead_letters.raw: the message's bytes as received (bytea), so that no message's bytes can
make the dead-letter insert fail; an index to find a redelivered poison record.

Revision ID: 0016
Revises: 0015
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("DROP INDEX dead_letters_position")
    op.execute("ALTER TABLE dead_letters DROP COLUMN raw")
