-- journal (key, seq) served no query: replay reads by seq, deduplication by (source,
-- event_id), the audit by (stream, stream_pos). Keys (partner and customer ids) arrive in
-- random order, so every append touched a random leaf of this index. Re-inserting 50,000
-- of the benchmark's journal rows after 150,000, in COPYs of 2,500: 82-88k -> 119-126k
-- rows/s without it.
DROP INDEX journal_key;
