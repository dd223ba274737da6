-- Postings and ledger entries must name a journal row. A foreign key checked that row by
-- row (one RI trigger query per row: 2.0 s of the 6.7 s PostgreSQL spent inserting the
-- benchmark's 657,690 posting legs); one check per INSERT/COPY statement over its
-- transition table does the same work as a single anti-join (0.3 s for all of them).
-- The journal refuses UPDATE, DELETE and TRUNCATE, so a row once referenced stays.
ALTER TABLE postings DROP CONSTRAINT IF EXISTS postings_journal_seq_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_journal_seq_fkey;

CREATE OR REPLACE FUNCTION trailpay_check_groups_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
    orphan bigint;
BEGIN
    SELECT group_id, currency, sum(amount) AS total INTO off
      FROM new_postings GROUP BY group_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trailpay: posting group % does not balance: % % off',
            off.group_id, off.total, off.currency
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.journal_seq INTO orphan FROM new_postings n
     WHERE NOT EXISTS (SELECT 1 FROM journal j WHERE j.seq = n.journal_seq) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trailpay: postings name journal seq %, which is not in the journal', orphan
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION trailpay_check_entries_journaled() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    orphan bigint;
BEGIN
    SELECT n.journal_seq INTO orphan FROM new_entries n
     WHERE NOT EXISTS (SELECT 1 FROM journal j WHERE j.seq = n.journal_seq) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trailpay: ledger entries name journal seq %, which is not in the journal',
            orphan USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_journaled AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION trailpay_check_entries_journaled();
