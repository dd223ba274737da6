-- The HTTP intake's outbox. The embedded broker (Tansu, memory storage) forgets every
-- event it holds when it restarts, so an event answered 202 was only as durable as the
-- broker's memory. Now the gateway commits the event here before it answers, sends it,
-- and a sweeper deletes the rows the journal or the dead letters hold, and sends again
-- the ones that stay unjournaled too long. (source, event_id) match the journal's.
CREATE TABLE intake (
    id          bigserial PRIMARY KEY,
    source      text COLLATE "C" NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_sent_at ON intake (sent_at);
