-- Ledger entries keep their payload as the exact JSON text the ledger wrote.
-- As jsonb, PostgreSQL parsed every entry on insert (1.2 s of CPU for the benchmark's
-- 312,635 entries, measured by re-inserting them) and printed it back to text when the
-- outbox and the rebuild read it, only for the accrual to parse it once more. The text
-- is written by trailpay's own serialiser, so it is always valid JSON; query it with
-- payload::jsonb.
ALTER TABLE ledger_entries ALTER COLUMN payload TYPE text USING payload::text;
