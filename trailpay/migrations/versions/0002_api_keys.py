"""API keys.

Revision ID: 0002
Revises: 0001
"""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(Path(__file__).with_suffix(".sql").read_text()))


def downgrade() -> None:
    op.drop_table("api_keys")
