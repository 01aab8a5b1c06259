-- Users, wallet lifecycle, the double-entry ledger and idempotency keys.

CREATE TABLE users (
    id               UUID PRIMARY KEY,
    -- As given by the client; uniqueness is on the lower-cased form.
    email            TEXT        NOT NULL,
    email_normalized TEXT        NOT NULL CONSTRAINT users_email_unique UNIQUE,
    name             TEXT        NOT NULL CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at       TIMESTAMPTZ NOT NULL
);

ALTER TABLE wallets
    ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
        CONSTRAINT wallets_status_known CHECK (status IN ('active', 'frozen', 'closed'));
-- Wallets written before users existed keep their owner ids; new ones must name a user.
ALTER TABLE wallets
    ADD CONSTRAINT wallets_user_exists FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;

-- Double-entry ledger. Every money movement is one ledger transaction whose entries sum to
-- zero. Deposits and withdrawals post against the currency's external account (wallet_id
-- NULL). Each wallet entry carries the wallet's running balance, so the latest entry's
-- balance_after is the sum of all its entries, and must equal wallets.balance_minor.
CREATE TABLE ledger_transactions (
    id             UUID PRIMARY KEY,
    kind           TEXT        NOT NULL CONSTRAINT ledger_transactions_kind CHECK (kind IN ('deposit', 'withdrawal', 'transfer')),
    currency       CHAR(3)     NOT NULL,
    amount_minor   BIGINT      NOT NULL CONSTRAINT ledger_transactions_amount_positive CHECK (amount_minor > 0),
    correlation_id TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE ledger_entries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id      UUID        NOT NULL REFERENCES ledger_transactions (id),
    -- NULL: the external account of `currency`.
    wallet_id           UUID        REFERENCES wallets (id),
    currency            CHAR(3)     NOT NULL,
    amount_minor        BIGINT      NOT NULL CONSTRAINT ledger_entries_amount_nonzero CHECK (amount_minor <> 0),
    -- The wallet's balance after this entry; NULL for external entries.
    balance_after_minor BIGINT      CONSTRAINT ledger_entries_balance_not_negative CHECK (balance_after_minor >= 0),
    created_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT ledger_entries_wallet_has_balance CHECK ((wallet_id IS NULL) = (balance_after_minor IS NULL))
);
CREATE INDEX ledger_entries_wallet ON ledger_entries (wallet_id, id DESC) INCLUDE (balance_after_minor) WHERE wallet_id IS NOT NULL;
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

-- Each wallet entry continues the wallet's running balance.
CREATE FUNCTION ledger_entry_continues_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous BIGINT;
BEGIN
    IF NEW.wallet_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT balance_after_minor INTO previous FROM ledger_entries
     WHERE wallet_id = NEW.wallet_id AND id < NEW.id ORDER BY id DESC LIMIT 1;
    IF NEW.balance_after_minor IS DISTINCT FROM COALESCE(previous, 0) + NEW.amount_minor THEN
        RAISE EXCEPTION 'ledger entry % breaks the running balance of wallet %', NEW.id, NEW.wallet_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entries_running_balance';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_entries_running_balance BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_continues_balance();

-- At commit: the transaction's entries sum to zero, and the wallet's stored balance is
-- its latest running balance.
CREATE FUNCTION ledger_entry_commit_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT sum(amount_minor) FROM ledger_entries WHERE transaction_id = NEW.transaction_id) <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    IF NEW.wallet_id IS NOT NULL AND (SELECT balance_minor FROM wallets WHERE id = NEW.wallet_id) IS DISTINCT FROM
       (SELECT balance_after_minor FROM ledger_entries WHERE wallet_id = NEW.wallet_id ORDER BY id DESC LIMIT 1) THEN
        RAISE EXCEPTION 'wallet % balance differs from its ledger', NEW.wallet_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_commit_check AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_commit_check();

-- Carry the deposits recorded so far into the ledger, then retire their table.
INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at)
SELECT t.id, 'deposit', w.currency, t.amount_minor, t.correlation_id, t.created_at
  FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id;
INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at)
SELECT e.transaction_id, e.wallet_id, e.currency, e.amount_minor, e.balance_after_minor, e.created_at
  FROM (SELECT t.id AS transaction_id, t.wallet_id, w.currency, t.amount_minor, t.balance_after_minor, t.created_at, 1 AS side
          FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id
        UNION ALL
        SELECT t.id, NULL, w.currency, -t.amount_minor, NULL, t.created_at, 2
          FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id) e
 ORDER BY e.created_at, e.transaction_id, e.side;
DROP TABLE wallet_transactions;

-- Idempotency-Key records (Stripe's semantics): the first response to a key, scoped to
-- the caller and route, stored in the same transaction as the change it describes.
CREATE TABLE idempotency_keys (
    caller          TEXT        NOT NULL,
    route           TEXT        NOT NULL,
    key             TEXT        NOT NULL CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash    BYTEA       NOT NULL,
    response_status SMALLINT    NOT NULL,
    response_body   JSONB       NOT NULL,
    location        TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (caller, route, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- A wallet's balance only changes together with its ledger entries.
CREATE FUNCTION wallet_balance_matches_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance_minor IS DISTINCT FROM COALESCE(
        (SELECT balance_after_minor FROM ledger_entries WHERE wallet_id = NEW.id ORDER BY id DESC LIMIT 1), 0) THEN
        RAISE EXCEPTION 'wallet % balance differs from its ledger', NEW.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER wallets_balance_matches_ledger AFTER INSERT OR UPDATE OF balance_minor ON wallets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wallet_balance_matches_ledger();
