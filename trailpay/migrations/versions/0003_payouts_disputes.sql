-- Payouts, disputes, the accrual's outbox and the gateway's command requests.

-- Payouts: a projection of the postings the engine made for payout runs and their
-- confirmations (rebuildable from the journal). Payables = rows still in_payout.
CREATE TABLE payouts (
    payout_id    text    PRIMARY KEY,
    run_id       text    NOT NULL,
    partner_id   text    NOT NULL,
    currency     char(3) NOT NULL,
    amount       numeric(20, 6) NOT NULL,
    as_of        date    NOT NULL,
    status       text    NOT NULL,
    reference    text,
    journal_seq  bigint  NOT NULL,   -- the run entry that created it: the payables' stable order
    settled_seq  bigint,             -- the confirmation entry that settled it
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz,
    CONSTRAINT payouts_status CHECK (status IN ('in_payout', 'paid', 'failed')),
    CONSTRAINT payouts_amount CHECK (amount > 0)
);
CREATE INDEX payouts_awaiting ON payouts (journal_seq, payout_id) WHERE status = 'in_payout';
CREATE INDEX payouts_partner ON payouts (partner_id, as_of);
CREATE INDEX payouts_run ON payouts (run_id);

-- Disputes on statement lines (projection of dispute.opened / dispute.resolved).
CREATE TABLE disputes (
    dispute_id     text   PRIMARY KEY,
    partner_id     text   NOT NULL,
    posting_id     text   NOT NULL,
    reason         text   NOT NULL,
    opened_by      text   NOT NULL,
    status         text   NOT NULL,
    opened_seq     bigint NOT NULL,
    opened_at      timestamptz NOT NULL,   -- effective time of the opening
    resolved_seq   bigint,
    resolved_at    timestamptz,
    resolved_by    text,
    adjustment     jsonb,                  -- {currency, amount, reason, posting_id}
    CONSTRAINT disputes_status CHECK (status IN ('open', 'accepted', 'rejected'))
);
CREATE INDEX disputes_partner ON disputes (partner_id, opened_seq);

-- Messages the accrual service publishes after commit (payout.requested).
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text  NOT NULL,
    key         text  NOT NULL,
    payload     jsonb NOT NULL,
    published   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unpublished ON outbox (topic, id) WHERE NOT published;

-- Commands the gateway produced to trailpay.events, by CloudEvent id: a retry with the
-- same request re-sends the same event (a journal duplicate); another request under
-- the same id (a contradicting confirmation or resolution) is refused with 409.
CREATE TABLE command_requests (
    event_id      text PRIMARY KEY,
    request_hash  text NOT NULL,
    event         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
