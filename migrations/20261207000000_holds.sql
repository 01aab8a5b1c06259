-- Holds (docs/holds.md): money reserved now, captured or voided later, or expired.
--
-- Double entry: every ledger entry belongs to an account, `balance` (every entry so far) or
-- `held`. A wallet has one of each, with its own running balance; the wallet row mirrors
-- them as balance_minor and held_minor. The external account (wallet_id NULL) has one of
-- each too. A ledger transaction's entries sum to zero per account.

ALTER TABLE ledger_entries
    ADD COLUMN account TEXT NOT NULL DEFAULT 'balance'
        CONSTRAINT ledger_entries_account_known CHECK (account IN ('balance', 'held'));
-- The running balance is continued per wallet and account.
CREATE INDEX ledger_entries_wallet_account ON ledger_entries (wallet_id, account, id DESC)
    INCLUDE (balance_after_minor, created_at) WHERE wallet_id IS NOT NULL;
DROP INDEX ledger_entries_wallet;

ALTER TABLE wallets
    ADD COLUMN held_minor BIGINT NOT NULL DEFAULT 0
        CONSTRAINT wallets_held_not_negative CHECK (held_minor >= 0);

CREATE TABLE holds (
    -- The id of the ledger transaction that placed it.
    id             UUID        PRIMARY KEY,
    wallet_id      UUID        NOT NULL CONSTRAINT holds_wallet REFERENCES wallets (id),
    -- Where a capture sends the money; NULL: out to the external account.
    to_wallet_id   UUID        CONSTRAINT holds_to_wallet REFERENCES wallets (id),
    currency       CHAR(3)     NOT NULL,
    amount_minor   BIGINT      NOT NULL CONSTRAINT holds_amount_positive CHECK (amount_minor > 0),
    captured_minor BIGINT,
    status         TEXT        NOT NULL
        CONSTRAINT holds_status_known CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    description    TEXT        CONSTRAINT holds_description_length CHECK (char_length(description) <= 500),
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    -- When it was captured, voided or swept as expired.
    closed_at      TIMESTAMPTZ,
    CONSTRAINT holds_capture_within_hold
        CHECK (captured_minor IS NULL OR (captured_minor > 0 AND captured_minor <= amount_minor)),
    CONSTRAINT holds_captured_has_amount CHECK ((status = 'captured') = (captured_minor IS NOT NULL)),
    CONSTRAINT holds_closed_has_time CHECK ((status = 'pending') = (closed_at IS NULL)),
    CONSTRAINT holds_expiry_after_creation CHECK (expires_at > created_at),
    CONSTRAINT holds_other_wallet CHECK (to_wallet_id IS DISTINCT FROM wallet_id)
);
-- A wallet's pending holds (what a decision and a read need), the sweeper's queue, the lists.
CREATE INDEX holds_pending ON holds (wallet_id, expires_at) WHERE status = 'pending';
CREATE INDEX holds_expiring ON holds (expires_at) WHERE status = 'pending';
CREATE INDEX holds_wallet ON holds (wallet_id, id DESC);

-- A hold changes once: from pending to captured, voided or expired; nothing else of it ever.
CREATE FUNCTION holds_change_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending'
       OR (NEW.id, NEW.wallet_id, NEW.to_wallet_id, NEW.currency, NEW.amount_minor,
           NEW.description, NEW.expires_at, NEW.created_at)
          IS DISTINCT FROM
          (OLD.id, OLD.wallet_id, OLD.to_wallet_id, OLD.currency, OLD.amount_minor,
           OLD.description, OLD.expires_at, OLD.created_at) THEN
        RAISE EXCEPTION 'hold % changes only once, from pending', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holds_change_once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER holds_change_once BEFORE UPDATE ON holds
    FOR EACH ROW EXECUTE FUNCTION holds_change_once();

-- The hold a `hold`, `capture`, `void` or `expiry` transaction records.
ALTER TABLE ledger_transactions
    ADD COLUMN hold_id UUID CONSTRAINT ledger_transactions_hold REFERENCES holds (id)
        DEFERRABLE INITIALLY DEFERRED,
    DROP CONSTRAINT ledger_transactions_kind,
    ADD CONSTRAINT ledger_transactions_kind CHECK (kind IN
        ('deposit', 'withdrawal', 'transfer', 'hold', 'capture', 'void', 'expiry')),
    ADD CONSTRAINT ledger_transactions_hold_kinds
        CHECK ((hold_id IS NOT NULL) = (kind IN ('hold', 'capture', 'void', 'expiry')));
CREATE INDEX ledger_transactions_hold ON ledger_transactions (hold_id) WHERE hold_id IS NOT NULL;

-- Each wallet entry continues the running balance of its wallet's account.
CREATE OR REPLACE FUNCTION ledger_entry_continues_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous BIGINT;
BEGIN
    IF NEW.wallet_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT balance_after_minor INTO previous FROM ledger_entries
     WHERE wallet_id = NEW.wallet_id AND account = NEW.account AND id < NEW.id
     ORDER BY id DESC LIMIT 1;
    IF NEW.balance_after_minor IS DISTINCT FROM COALESCE(previous, 0) + NEW.amount_minor THEN
        RAISE EXCEPTION 'ledger entry % breaks the running % of wallet %', NEW.id, NEW.account, NEW.wallet_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entries_running_balance';
    END IF;
    RETURN NEW;
END $$;

-- At commit: the transaction's entries sum to zero per account, and the wallet's stored
-- balance and held amount are its accounts' latest running balances.
CREATE OR REPLACE FUNCTION ledger_entry_commit_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM ledger_entries WHERE transaction_id = NEW.transaction_id
                GROUP BY account HAVING sum(amount_minor) <> 0) THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    IF NEW.wallet_id IS NOT NULL AND
       (SELECT CASE NEW.account WHEN 'held' THEN held_minor ELSE balance_minor END
          FROM wallets WHERE id = NEW.wallet_id) IS DISTINCT FROM
       (SELECT balance_after_minor FROM ledger_entries
         WHERE wallet_id = NEW.wallet_id AND account = NEW.account ORDER BY id DESC LIMIT 1) THEN
        RAISE EXCEPTION 'wallet % % differs from its ledger', NEW.wallet_id, NEW.account
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;

-- A wallet's balance and held amount only change together with their ledger entries.
CREATE OR REPLACE FUNCTION wallet_balance_matches_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.balance_minor, NEW.held_minor) IS DISTINCT FROM (
        COALESCE((SELECT balance_after_minor FROM ledger_entries
                   WHERE wallet_id = NEW.id AND account = 'balance' ORDER BY id DESC LIMIT 1), 0),
        COALESCE((SELECT balance_after_minor FROM ledger_entries
                   WHERE wallet_id = NEW.id AND account = 'held' ORDER BY id DESC LIMIT 1), 0)) THEN
        RAISE EXCEPTION 'wallet % balance differs from its ledger', NEW.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER wallets_balance_matches_ledger ON wallets;
CREATE CONSTRAINT TRIGGER wallets_balance_matches_ledger
    AFTER INSERT OR UPDATE OF balance_minor, held_minor ON wallets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wallet_balance_matches_ledger();

-- The runtime role changes a hold's status, never deletes one.
REVOKE DELETE ON holds FROM wallet_hub_runtime;
