-- Event-sourced wallets (docs/event-sourcing.md): every change of a wallet is an event
-- appended to the wallet's stream, in the transaction that makes the change, at the next
-- sequence (1, 2, 3 ... with no gap). The stream is the truth; the wallets row is a
-- snapshot of its fold, and its version is the stream's last sequence.
--
-- The streams of wallets that exist before this migration are derived from their ledger,
-- status history and holds by `wallet-hub migrate` right after it (store::streams::derive):
-- the event payloads need each currency's decimal places, which only the service knows.
-- Until a wallet's stream is derived, the check below refuses any change of it.

CREATE TABLE wallet_events (
    wallet_id   UUID        NOT NULL CONSTRAINT wallet_events_wallet REFERENCES wallets (id),
    sequence    BIGINT      NOT NULL CONSTRAINT wallet_events_sequence_positive CHECK (sequence >= 1),
    -- The sequence before this one, which must be in the stream: no gap. NULL for the
    -- first event (a foreign key does not check a NULL).
    previous    BIGINT      GENERATED ALWAYS AS (NULLIF(sequence - 1, 0)) STORED,
    event_id    UUID        NOT NULL CONSTRAINT wallet_events_event_id_unique UNIQUE,
    event_type  TEXT        NOT NULL,
    payload     JSONB       NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Derived by the migration from the history of a wallet that existed before streams:
    -- consumers never received these ids (replay skips them unless asked).
    migrated    BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (wallet_id, sequence),
    CONSTRAINT wallet_events_no_gap FOREIGN KEY (wallet_id, previous)
        REFERENCES wallet_events (wallet_id, sequence),
    CONSTRAINT wallet_events_first_opens CHECK ((sequence = 1) = (event_type = 'WalletCreated'))
);
-- Replay by time.
CREATE INDEX wallet_events_occurred ON wallet_events (occurred_at);

-- Insert-only: the runtime role can append, never change or remove an event.
REVOKE UPDATE, DELETE, TRUNCATE ON wallet_events FROM wallet_hub_runtime;

-- The outbox row of a wallet event carries its sequence (the CloudEvent `sequence`).
ALTER TABLE outbox ADD COLUMN sequence BIGINT;

-- A wallet's row is the snapshot of its stream: at commit, its version is the stream's
-- last sequence. A writer that changes a wallet without appending its event (or an old
-- service still running during an upgrade) is refused, and its transaction changes
-- nothing.
CREATE FUNCTION wallet_version_matches_stream() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version IS DISTINCT FROM
       (SELECT max(sequence) FROM wallet_events WHERE wallet_id = NEW.id) THEN
        RAISE EXCEPTION 'wallet % is at version %, its stream does not end there', NEW.id, NEW.version
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_version_matches_stream';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER wallets_version_matches_stream
    AFTER INSERT OR UPDATE OF version ON wallets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wallet_version_matches_stream();
