-- Dead letters keep the message's raw bytes. A Kafka record may hold anything, a NUL
-- byte or bytes that are not UTF-8 at all, and text refuses both: the insert of the
-- dead letter then failed, and with it the batch, over and over. bytea takes any bytes;
-- the text columns (payload, reason, ids) get a readable copy, NUL escaped and bounded.
ALTER TABLE dead_letters ADD COLUMN raw bytea;

-- A poison record redelivered (a crash before the offset commit, a rebalance) is found
-- by where it sat and what it held, and not dead-lettered twice.
CREATE INDEX dead_letters_position ON dead_letters (topic, partition, "offset");
