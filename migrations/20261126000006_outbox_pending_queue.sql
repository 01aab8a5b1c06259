-- The outbox becomes an append-only log, and what is still to publish moves to a narrow
-- queue table, `outbox_pending`: one row per unsent event, deleted once Kafka acknowledged
-- it.
--
-- Why: marking a wide outbox row sent was an UPDATE, i.e. a whole new row version (~0.8 kB
-- of JSON and headers) plus an entry in every index, for each event; the table bloated
-- until vacuum and the relay's pending-row queries slowed down with it (see
-- docs/benchmarks-relay.md). Deleting a ~60-byte queue row writes no new version, and the
-- log itself is only ever inserted into (and trimmed by retention).
--
-- A statement trigger queues every row inserted into `outbox`, whatever inserts it, so no
-- writer can forget the second half.

-- The old partial indexes over `sent` go with it (one of them has the queue's name).
DROP INDEX outbox_pending, outbox_pending_by_key, outbox_sent_at;

CREATE TABLE outbox_pending (
    -- The outbox row to publish (no foreign key: its KEY SHARE lock would write to the log
    -- row on every insert; retention never deletes a queued row, and a test checks it).
    id              BIGINT      PRIMARY KEY,
    -- The Kafka key, copied so the relay's hold-back check stays on this table.
    aggregate_id    UUID        NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    parked_at       TIMESTAMPTZ,
    last_error      TEXT
) WITH (
    -- A queue: rows live for milliseconds. Vacuum it early and without throttling (the
    -- relay also vacuums it after large drains, see relay.vacuum_after_rows).
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

-- Rows that hold their key back: parked, or backing off after a failed attempt. Normally
-- empty, so the relay's "no earlier blocked row of this key" check is a probe of an empty
-- index, not a scan of the queue.
CREATE INDEX outbox_pending_blocked ON outbox_pending (aggregate_id, id)
    WHERE parked_at IS NOT NULL OR next_attempt_at IS NOT NULL;

INSERT INTO outbox_pending (id, aggregate_id, attempts, next_attempt_at, parked_at, last_error)
SELECT id, aggregate_id, attempts, next_attempt_at, parked_at, last_error
FROM outbox WHERE NOT sent;

CREATE FUNCTION outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id, aggregate_id) SELECT id, aggregate_id FROM inserted;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_enqueue AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_enqueue();

-- Delivery state now lives in the queue. Retention and the ops rates go by created_at, which
-- grows with id: a BRIN index costs next to nothing on insert.
ALTER TABLE outbox
    DROP CONSTRAINT outbox_sent_has_time,
    DROP COLUMN sent,
    DROP COLUMN sent_at,
    DROP COLUMN attempts,
    DROP COLUMN last_error,
    DROP COLUMN next_attempt_at,
    DROP COLUMN parked_at;

CREATE INDEX outbox_created_at ON outbox USING brin (created_at) WITH (autosummarize = on);
