-- Principals: who may act, and who did.
--
-- A user is bound to the identity of the access token that registered it (`iss`, `sub`).
-- Users registered before authentication existed keep NULLs: no token reaches them.
ALTER TABLE users
    ADD COLUMN issuer  TEXT,
    ADD COLUMN subject TEXT,
    ADD CONSTRAINT users_identity_complete CHECK ((issuer IS NULL) = (subject IS NULL)),
    ADD CONSTRAINT users_identity_unique UNIQUE (issuer, subject);

-- Who moved the money: the principal whose request wrote the ledger transaction (NULL for
-- transactions written before authentication).
ALTER TABLE ledger_transactions
    ADD COLUMN actor_issuer  TEXT,
    ADD COLUMN actor_subject TEXT,
    ADD CONSTRAINT ledger_transactions_actor_complete
        CHECK ((actor_issuer IS NULL) = (actor_subject IS NULL));

-- Who changed a wallet's status, and when: one row per freeze, unfreeze or close.
CREATE TABLE wallet_status_changes (
    id             UUID PRIMARY KEY,
    wallet_id      UUID        NOT NULL CONSTRAINT wallet_status_changes_wallet REFERENCES wallets (id),
    from_status    TEXT        NOT NULL,
    to_status      TEXT        NOT NULL,
    actor_issuer   TEXT        NOT NULL,
    actor_subject  TEXT        NOT NULL,
    correlation_id TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX wallet_status_changes_wallet ON wallet_status_changes (wallet_id, created_at);

-- Idempotency keys belong to the authenticated principal alone. The request a key was
-- first used for (method and concrete path in `route`, body in `request_hash`) is stored
-- and compared, so the same key on another path or body is refused, never answered with
-- another resource's reply. Keys stored before were scoped by a self-asserted client id and
-- the route template; of those that now collide, the newest is kept.
DELETE FROM idempotency_keys k
 USING idempotency_keys newer
 WHERE newer.caller = k.caller AND newer.key = k.key
   AND (newer.created_at, newer.route) > (k.created_at, k.route);
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (caller, key);
