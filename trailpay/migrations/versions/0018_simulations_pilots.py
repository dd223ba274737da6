"""simulations, simulation_results, pilots: what-if and shadow projections, apart from live.

Revision ID: 0018
Revises: 0017
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("DROP TABLE pilots")
    op.execute("DROP TABLE simulation_results")
    op.execute("DROP TABLE simulations")
