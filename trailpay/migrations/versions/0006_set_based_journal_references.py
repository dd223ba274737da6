"""Journal references of postings and ledger entries checked once per statement.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from trailpay.migrations.sql import run_sql_beside

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_beside(__file__)


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_entries_journaled ON ledger_entries")
    op.execute("DROP FUNCTION trailpay_check_entries_journaled()")
    op.execute("""
CREATE OR REPLACE FUNCTION trailpay_check_groups_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT group_id, currency, sum(amount) AS total INTO off
      FROM new_postings GROUP BY group_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trailpay: posting group % does not balance: % % off',
            off.group_id, off.total, off.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$""")
    op.execute("ALTER TABLE postings ADD CONSTRAINT postings_journal_seq_fkey "
               "FOREIGN KEY (journal_seq) REFERENCES journal (seq)")
    op.execute("ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_journal_seq_fkey "
               "FOREIGN KEY (journal_seq) REFERENCES journal (seq)")
