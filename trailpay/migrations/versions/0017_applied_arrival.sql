-- Which entries arrived together. The accrual folds a partner's late entries of one batch
-- into its history together (core.timeline), so the groups it posts depend on how entries
-- arrived; a rebuild, and a timeline read back after a restart, replay the same arrivals.
-- One batch is one transaction: its transaction id names the arrival. Rows from before
-- keep NULL, and each of them arrived alone (as they were folded in).
ALTER TABLE accrual_applied ADD COLUMN arrival bigint;
ALTER TABLE accrual_applied ALTER COLUMN arrival SET DEFAULT txid_current();
