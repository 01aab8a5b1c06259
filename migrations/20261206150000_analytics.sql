-- Issue 27: what the analytics job (Apache Flink, analytics/) sends back, as the service
-- reads it from Kafka through its inbox.

-- Volume per currency and event-time minute. One row per (currency, minute): the job
-- emits each minute once (exactly once); a replay of the same event is kept out by the
-- inbox, and a second event for the same minute (a job restarted without its state)
-- replaces the row rather than adding to it.
CREATE TABLE analytics_volume (
    currency            CHAR(3)     NOT NULL,
    minute              TIMESTAMPTZ NOT NULL
        CONSTRAINT analytics_volume_whole_minute CHECK (minute = date_trunc('minute', minute)),
    deposits_count      BIGINT      NOT NULL CHECK (deposits_count >= 0),
    deposits_minor      BIGINT      NOT NULL CHECK (deposits_minor >= 0),
    withdrawals_count   BIGINT      NOT NULL CHECK (withdrawals_count >= 0),
    withdrawals_minor   BIGINT      NOT NULL CHECK (withdrawals_minor >= 0),
    transfers_count     BIGINT      NOT NULL CHECK (transfers_count >= 0),
    transfers_minor     BIGINT      NOT NULL CHECK (transfers_minor >= 0),
    -- The CloudEvent it came from; also the list's cursor.
    event_id            UUID        NOT NULL CONSTRAINT analytics_volume_event UNIQUE,
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (currency, minute)
);

-- Velocity alerts: a wallet's outgoing movements crossed the limit in a sliding window.
CREATE TABLE risk_alerts (
    id           UUID        PRIMARY KEY,
    wallet_id    UUID        NOT NULL,
    user_id      UUID        NOT NULL,
    kind         TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL CHECK (window_end > window_start),
    currency     CHAR(3)     NOT NULL,
    movements    BIGINT      NOT NULL CHECK (movements >= 0),
    amount_minor BIGINT      NOT NULL CHECK (amount_minor >= 0),
    event_id     UUID        NOT NULL CONSTRAINT risk_alerts_event UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX risk_alerts_created ON risk_alerts (created_at, id);

-- A wallet gets one welcome, but a velocity notification per crossing: the one-per-kind
-- rule now holds for every kind except `velocity-exceeded` (whose once-ness is the
-- inbox's: one notification per alert event).
ALTER TABLE notifications DROP CONSTRAINT notifications_one_per_wallet_and_kind;
CREATE UNIQUE INDEX notifications_one_per_wallet_and_kind ON notifications (wallet_id, kind)
    WHERE kind <> 'velocity-exceeded';
