-- Wallets, their deposits, the transactional outbox, and the consumers' side
-- (welcome notifications and the inbox that makes each event's effect happen once).

CREATE TABLE wallets (
    id            UUID PRIMARY KEY,
    user_id       UUID        NOT NULL,
    name          TEXT        NOT NULL CONSTRAINT wallets_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    currency      CHAR(3)     NOT NULL,
    -- Integer minor units of `currency` (cents for USD). Never negative.
    balance_minor BIGINT      NOT NULL CONSTRAINT wallets_balance_not_negative CHECK (balance_minor >= 0),
    version       BIGINT      NOT NULL CONSTRAINT wallets_version_positive CHECK (version >= 1),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX wallets_user_id ON wallets (user_id);

-- Every money movement of a wallet, newest last.
CREATE TABLE wallet_transactions (
    id                  UUID PRIMARY KEY,
    wallet_id           UUID        NOT NULL REFERENCES wallets (id),
    kind                TEXT        NOT NULL CONSTRAINT wallet_transactions_kind CHECK (kind IN ('deposit')),
    amount_minor        BIGINT      NOT NULL CONSTRAINT wallet_transactions_amount_positive CHECK (amount_minor > 0),
    balance_after_minor BIGINT      NOT NULL CONSTRAINT wallet_transactions_balance_after_not_negative CHECK (balance_after_minor >= 0),
    correlation_id      TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX wallet_transactions_wallet ON wallet_transactions (wallet_id, created_at DESC, id DESC);

-- The transactional outbox: written in the same transaction as the state change it
-- describes, published to Kafka by the relay. Column names follow the original design;
-- the rest is what delivery needs.
CREATE TABLE outbox (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- CloudEvent id; stable across re-sends so consumers can dedupe.
    event_id       UUID        NOT NULL CONSTRAINT outbox_event_id_unique UNIQUE,
    event_type     VARCHAR(255) NOT NULL,
    -- Kafka key: one aggregate's events go to one partition, in order.
    aggregate_id   UUID        NOT NULL,
    payload        JSONB       NOT NULL,
    correlation_id VARCHAR(255),
    -- W3C trace context of the request that wrote the row.
    traceparent    TEXT,
    tracestate     TEXT,
    occurred_at    TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent           BOOLEAN     NOT NULL DEFAULT FALSE,
    sent_at        TIMESTAMPTZ,
    attempts       INTEGER     NOT NULL DEFAULT 0,
    last_error     TEXT,
    CONSTRAINT outbox_sent_has_time CHECK (sent = (sent_at IS NOT NULL))
);
-- Pending rows only: stays small however many sent rows are kept for replay.
CREATE INDEX outbox_pending ON outbox (id) WHERE NOT sent;

-- Welcome notifications (and later others): one per wallet and kind.
CREATE TABLE notifications (
    id         UUID PRIMARY KEY,
    user_id    UUID        NOT NULL,
    wallet_id  UUID        NOT NULL,
    kind       TEXT        NOT NULL,
    message    TEXT        NOT NULL,
    event_id   UUID        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT notifications_one_per_wallet_and_kind UNIQUE (wallet_id, kind)
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);

-- Consumer inbox: an event's effect and its row here commit together, so a redelivered
-- event is recognised and skipped.
CREATE TABLE inbox (
    consumer     TEXT        NOT NULL,
    event_source TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_source, event_id)
);
