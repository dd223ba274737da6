-- Outbox rows carry the id of the transaction that wrote them (xid8, never wraps).
--
-- Before, a writer took the outbox's lock from its insert to its commit, so that ids
-- became visible in order and a publisher's id cursor never passed a row that a slower
-- transaction would commit later. That lock serialised every ledger process and lane
-- on one outbox, commit included (docs/scale.md).
--
-- Now a publisher reads rows in (xid, id) order, and only rows of transactions older
-- than every transaction still running (xid < pg_snapshot_xmin(pg_current_snapshot())):
-- those are final, committed or never to be seen, so the cursor (last_xid, last_id)
-- passes nothing that could still appear before it.
--
-- Rows already here get xid 0: they keep their id order, before every new row, and a
-- cursor (0, last_id) is where its old last_id was.
ALTER TABLE ledger_entries ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE ledger_entries ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX ledger_entries_xid_order ON ledger_entries (xid, id);

ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX outbox_xid_order ON outbox (xid, id);

ALTER TABLE outbox_cursors ADD COLUMN last_xid xid8 NOT NULL DEFAULT '0';
