-- A statement's opening balances were summed from every partner leg before its month:
-- for a partner with years of history, thousands of rows fetched from all over the heap
-- (3-20 ms a statement in the benchmark). balance_months keeps the same sums per
-- effective month, by the balances projection's own key, written by the accrual in the
-- transaction that writes the postings; an opening is the sum of the months before, a
-- few hundred rows at most. Over all months it equals `balances` (a test checks it).
CREATE TABLE balance_months (
    partner_id    text    NOT NULL,
    month         date    NOT NULL,  -- the first day of the UTC month of effective_at
    currency      char(3) NOT NULL,
    bucket        text    NOT NULL,
    available_on  date    NOT NULL DEFAULT '0001-01-01',
    amount        numeric(20, 6) NOT NULL,
    PRIMARY KEY (partner_id, month, currency, bucket, available_on)
);

INSERT INTO balance_months (partner_id, month, currency, bucket, available_on, amount)
SELECT partner_id, date_trunc('month', effective_at AT TIME ZONE 'UTC')::date, currency, bucket,
       coalesce(available_on, '0001-01-01'), sum(amount)
  FROM postings WHERE account <> 'company:commissions'
 GROUP BY 1, 2, 3, 4, 5;

-- Statements read partner legs only, by time (the month's lines) and, for pending money
-- whose hold ends in the month, by available_on. The company's contra legs are never
-- read by partner, so they leave the index: half its entries, half its upkeep per batch.
DROP INDEX postings_partner_time;
CREATE INDEX postings_partner_time ON postings (partner_id, effective_at)
    WHERE account <> 'company:commissions';
CREATE INDEX postings_partner_pending ON postings (partner_id, available_on)
    WHERE bucket = 'pending';
