"""Initial schema: journal, dead letters, plans, partners, attribution, postings, balances.

Revision ID: 0001
Revises:
"""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sql = (Path(__file__).with_suffix(".sql")).read_text()
    # asyncpg runs a multi-statement script only through its simple-query path.
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))


def downgrade() -> None:
    raise NotImplementedError("trailpay does not drop its books; restore from backup instead")
