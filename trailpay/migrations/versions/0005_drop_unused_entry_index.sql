-- ledger_entries (partner_id, id) served no query: the outbox reads by (topic, id) where
-- unpublished, the rebuild scans in journal order. Every entry paid for it twice (the
-- insert, and the update that marks it published, which is never HOT).
DROP INDEX IF EXISTS ledger_entries_partner;
