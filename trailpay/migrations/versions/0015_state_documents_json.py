"""Partner states and customer books are stored as json, not jsonb.

The accrual rewrites each touched partner's state and changed books every batch and
reads them back only whole (`::text`, on a cold start or after a rebalance); nothing
queries inside a book, and one report reads `state->>'last_run'`, which json answers
too. jsonb parses each document into its binary form on the way in: upserting 40,000
of the benchmark's books cost PostgreSQL 8.4-10.4 µs a row as jsonb, 5.6-6.6 as json
(which still checks that the text is JSON), about 1.5 µs of PostgreSQL an event.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _retype(to: str) -> None:
    op.execute(f"ALTER TABLE partner_state ALTER COLUMN state TYPE {to} USING state::{to}")
    op.execute(f"ALTER TABLE partner_customer_state ALTER COLUMN book TYPE {to} USING book::{to}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
