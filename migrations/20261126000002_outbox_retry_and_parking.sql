-- Failed sends back off (next_attempt_at) and, after relay.max_attempts, park (parked_at)
-- until an operator redrives them. Later rows of a key wait behind its parked or
-- backing-off row, so one wallet's events stay in order while other wallets flow.
ALTER TABLE outbox
    ADD COLUMN next_attempt_at TIMESTAMPTZ,
    ADD COLUMN parked_at       TIMESTAMPTZ;

-- The relay's hold-back check: earlier unsent rows of the same key.
CREATE INDEX outbox_pending_by_key ON outbox (aggregate_id, id) WHERE NOT sent;
