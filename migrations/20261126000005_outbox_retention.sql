-- Sent rows are kept for relay.retention_hours (for replay), then deleted in bounded
-- batches; this index finds them without touching pending rows.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent;
