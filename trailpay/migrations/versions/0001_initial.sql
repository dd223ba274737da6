-- trailpay initial schema. The database itself enforces the books:
-- journal and postings refuse UPDATE/DELETE, and every posting group must
-- sum to zero per currency when its transaction commits.

CREATE TABLE journal (
    seq           bigserial PRIMARY KEY,
    stream        text        NOT NULL,
    stream_pos    bigint      NOT NULL,
    source        text        NOT NULL,
    event_id      text        NOT NULL,
    type          text        NOT NULL,
    key           text        NOT NULL,
    effective_at  timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    body          text        NOT NULL,   -- exact canonical JSON, so its hash can be re-checked
    body_hash     text        NOT NULL,
    prev_hash     text        NOT NULL,
    row_hash      text        NOT NULL,
    CONSTRAINT journal_source_id UNIQUE (source, event_id),
    CONSTRAINT journal_stream_pos UNIQUE (stream, stream_pos)
);
CREATE INDEX journal_key ON journal (key, seq);

-- Head of each hash chain; locked by the writer of that stream only.
CREATE TABLE journal_streams (
    stream     text   PRIMARY KEY,
    last_pos   bigint NOT NULL,
    last_hash  text   NOT NULL
);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    stage        text NOT NULL,            -- intake | ledger | accrual
    source       text,
    event_id     text,
    type         text,
    field        text,
    reason       text NOT NULL,
    topic        text,
    partition    integer,
    "offset"     bigint,
    payload      text NOT NULL
);
CREATE INDEX dead_letters_event ON dead_letters (source, event_id);

-- Plans and partners: projections of journaled commands (gateway stream).
CREATE TABLE plan_versions (
    plan_id         text    NOT NULL,
    version         integer NOT NULL,
    effective_from  date    NOT NULL,
    document        jsonb   NOT NULL,
    doc_hash        text    NOT NULL,
    journal_seq     bigint  NOT NULL REFERENCES journal (seq),
    PRIMARY KEY (plan_id, version)
);

CREATE TABLE partner_enrollments (
    partner_id   text   NOT NULL,
    journal_seq  bigint NOT NULL REFERENCES journal (seq),
    type         text   NOT NULL,
    plan_id      text   NOT NULL,
    overrides    jsonb  NOT NULL DEFAULT '{}'::jsonb,
    payment      jsonb,
    PRIMARY KEY (partner_id, journal_seq)
);

CREATE TABLE partners (
    partner_id   text PRIMARY KEY,
    type         text   NOT NULL,
    plan_id      text   NOT NULL,
    overrides    jsonb  NOT NULL DEFAULT '{}'::jsonb,
    payment      jsonb,
    journal_seq  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Attribution: which partners own a customer, from its deal.closed.
CREATE TABLE customers (
    customer_id  text PRIMARY KEY,
    deal_id      text   NOT NULL,
    currency     text   NOT NULL,
    partners     jsonb  NOT NULL,
    journal_seq  bigint NOT NULL
);

-- Customer facts that arrived before their deal.closed.
CREATE TABLE parked (
    journal_seq  bigint PRIMARY KEY REFERENCES journal (seq),
    customer_id  text NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_customer ON parked (customer_id);

-- Attributed entries; doubles as the transactional outbox to trailpay.ledger.
CREATE TABLE ledger_entries (
    id           bigserial PRIMARY KEY,
    entry_id     text   NOT NULL UNIQUE,
    journal_seq  bigint NOT NULL REFERENCES journal (seq),
    partner_id   text   NOT NULL,
    topic        text   NOT NULL,        -- where the outbox publishes it (trailpay.ledger)
    payload      jsonb  NOT NULL,
    published    boolean NOT NULL DEFAULT false
);
CREATE INDEX ledger_entries_unpublished ON ledger_entries (topic, id) WHERE NOT published;
CREATE INDEX ledger_entries_partner ON ledger_entries (partner_id, id);

-- Accrual progress: an entry applied is recorded with its effect, in one transaction.
CREATE TABLE accrual_applied (
    entry_id       text PRIMARY KEY,
    partner_id     text   NOT NULL,
    journal_seq    bigint NOT NULL,
    applied_order  bigserial NOT NULL,
    outcome        text   NOT NULL DEFAULT 'applied'   -- applied | dead_letter
);
CREATE INDEX accrual_applied_partner ON accrual_applied (partner_id, applied_order);

CREATE TABLE partner_state (
    partner_id   text PRIMARY KEY,
    state        jsonb  NOT NULL,
    entries      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE postings (
    id            bigserial PRIMARY KEY,
    group_id      text    NOT NULL,
    leg           smallint NOT NULL,
    entry_id      text    NOT NULL,
    journal_seq   bigint  NOT NULL REFERENCES journal (seq),
    event_id      text    NOT NULL,
    event_type    text    NOT NULL,
    effective_at  timestamptz NOT NULL,
    partner_id    text    NOT NULL,
    customer_id   text,
    deal_id       text,
    account       text    NOT NULL,
    bucket        text    NOT NULL,
    currency      char(3) NOT NULL,
    amount        numeric(20, 6) NOT NULL,
    available_on  date,
    rule_id       text    NOT NULL,
    rule_kind     text    NOT NULL,
    plan_id       text,
    plan_version  integer,
    base          numeric,
    rate          numeric,
    multiplier    numeric,
    share         numeric,
    unrounded     numeric,
    explanation   text    NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT postings_group_leg UNIQUE (group_id, leg),
    CONSTRAINT postings_bucket CHECK (bucket IN
        ('expense', 'held', 'pending', 'payable', 'in_payout', 'paid', 'forfeited', 'clawed_back'))
);
CREATE INDEX postings_partner_time ON postings (partner_id, effective_at);

-- Live balances projection; pending money is kept by the date it becomes payable.
CREATE TABLE balances (
    partner_id    text    NOT NULL,
    currency      char(3) NOT NULL,
    bucket        text    NOT NULL,
    available_on  date    NOT NULL DEFAULT '0001-01-01',
    amount        numeric(20, 6) NOT NULL,
    PRIMARY KEY (partner_id, currency, bucket, available_on)
);

-- Append-only: the database refuses to change history.
CREATE FUNCTION trailpay_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'trailpay: % is append-only; % refused (a correction is a new row)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION trailpay_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION trailpay_refuse_change();

-- Double entry: each posting group sums to zero per currency. Checked once per
-- INSERT/COPY statement over its transition table (a per-row deferred trigger
-- costs one query per leg); the writer puts all legs of a group in one statement.
CREATE FUNCTION trailpay_check_groups_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT group_id, currency, sum(amount) AS total INTO off
      FROM new_postings GROUP BY group_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trailpay: posting group % does not balance: % % off',
            off.group_id, off.total, off.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER postings_balanced AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION trailpay_check_groups_balanced();
