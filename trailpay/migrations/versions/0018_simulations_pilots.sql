-- What-if simulations and pilots' shadow figures live in their own tables: a simulation
-- folds the recorded facts under other plan terms in memory and writes only here, never
-- to postings, balances, payouts or the journal (docs/decisions.md, "what-if isolation").
CREATE TABLE simulations (
    simulation_id text COLLATE "C" PRIMARY KEY,
    kind          text COLLATE "C" NOT NULL,          -- whatif | shadow
    pilot_id      text COLLATE "C",
    request       jsonb NOT NULL,
    status        text COLLATE "C" NOT NULL,          -- queued | running | done | failed
    entries_total bigint,
    entries_done  bigint NOT NULL DEFAULT 0,
    applied       bigint,
    refused       bigint,
    error         text,
    seconds       double precision,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- Every figure, actual against candidate, per partner, per partner type and in total.
CREATE TABLE simulation_results (
    simulation_id text COLLATE "C" NOT NULL REFERENCES simulations ON DELETE CASCADE,
    level         text COLLATE "C" NOT NULL,          -- partner | type | total
    key           text COLLATE "C" NOT NULL,
    currency      char(3) COLLATE "C" NOT NULL,
    figure        text COLLATE "C" NOT NULL,          -- a bucket, cost, rule:<id>, revenue
    actual        numeric(20, 6) NOT NULL,
    candidate     numeric(20, 6) NOT NULL,
    PRIMARY KEY (simulation_id, level, key, currency, figure)
);

-- A pilot's definition and arms as journaled (trailpay.pilot.defined); arms: partner -> arm.
CREATE TABLE pilots (
    pilot_id      text COLLATE "C" PRIMARY KEY,
    definition    jsonb NOT NULL,
    arms          jsonb NOT NULL,
    doc_hash      text COLLATE "C" NOT NULL,
    journal_seq   bigint NOT NULL,
    rolled_out    jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
