-- Activity read model (CQRS projection) fed by FundsAdded, FundsWithdrawn and
-- FundsTransferred events: per wallet, running totals in and out and the last activity.
CREATE TABLE wallet_activity (
    wallet_id        UUID PRIMARY KEY,
    currency         CHAR(3)     NOT NULL,
    total_in_minor   BIGINT      NOT NULL DEFAULT 0 CHECK (total_in_minor >= 0),
    total_out_minor  BIGINT      NOT NULL DEFAULT 0 CHECK (total_out_minor >= 0),
    events_applied   BIGINT      NOT NULL DEFAULT 0,
    last_activity_at TIMESTAMPTZ NOT NULL
);
