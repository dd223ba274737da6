"""The postings' journal reference check probes each distinct journal seq once, not each leg.

Revision ID: 0014
Revises: 0013
"""

from pathlib import Path

from trailpay.migrations.sql import run_sql, run_sql_beside

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:  # 0006's function, as it was
    script = (Path(__file__).parent / "0006_set_based_journal_references.sql").read_text()
    start = script.index("CREATE OR REPLACE FUNCTION trailpay_check_groups_balanced()")
    run_sql(script[start:script.index("CREATE FUNCTION trailpay_check_entries_journaled()")])
