-- A posting leg is identified by (group_id, leg): the group the plan engine made and the
-- leg's place in it, which disputes and statements already use. The surrogate bigserial
-- id served no reader, and cost every leg a sequence call and a third index entry:
-- 12% of the time PostgreSQL takes to COPY the benchmark's legs (re-inserting 60,000
-- legs after 500,000: 85-89k -> 97-106k rows/s). The unique constraint becomes the key.
ALTER TABLE postings DROP CONSTRAINT postings_pkey;
ALTER TABLE postings DROP COLUMN id;
ALTER TABLE postings DROP CONSTRAINT postings_group_leg;
ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY (group_id, leg);
