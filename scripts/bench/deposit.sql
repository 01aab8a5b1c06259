-- pgbench script: one deposit, the same SQL transaction the API runs for
-- POST /v1/wallets/{id}/deposits (see crates/api/src/wallets/movements.rs move_money,
-- crates/store/src/wallets.rs lock and update, crates/store/src/ledger.rs post,
-- crates/store/src/streams.rs append and crates/outbox/src/publisher.rs INSERT). The relay's wake-up is not part of it: the
-- service sends that pg_notify after the commit, from its own connection
-- (crates/outbox/src/wake.rs).
-- Used by scripts/bench-deposits; run with -M prepared (sqlx prepares and caches
-- every statement, so the API uses named prepared statements too) and
--   -D wallets=N -D amount=100 -D kind=deposit -D event_type=FundsAdded
--   -D actor_issuer=ISS -D actor_subject=SUB   (the depositing token's iss and sub)
-- scripts/bench-deposits checks after its run that the API's and this script's FundsAdded
-- payloads have one shape and their ledger rows one actor.
--
-- The same round trips as the API's batch of one (7: BEGIN, the lock, which also reads
-- the transaction id the API keeps for the COMMIT rule, the wallet update, the ledger
-- transaction and its entries in one statement, the stream row, the outbox row, COMMIT).
-- Differences from the API, all inside those round trips:
--   * the wallet is picked by number through bench_wallets(n, id), a 1..N map of the
--     wallets the API created, in a subquery of the locking SELECT;
--   * the values the service computes in Rust (UUIDv7 ids, correlation id, clock,
--     traceparent) come from extra output columns of the locking SELECT;
--   * the entry arrays are built with ARRAY[...] around the scalars (pgbench has no
--     array variables), and the outbox payload, which the service binds as a JSONB
--     value, is built with jsonb_build_object to the same shape.
\set w random(1, :wallets)
\set neg_amount 0 - :amount
BEGIN;
SELECT id, user_id, name, currency, balance_minor, status, version, created_at,
       bench_uuid_v7() AS tx_id, bench_uuid_v7() AS event_id, bench_uuid_v7()::text AS corr_id,
       date_trunc('microseconds', clock_timestamp()) AS occurred_at,
       '00-' || md5(random()::text) || '-' || substr(md5(random()::text), 1, 16) || '-01' AS traceparent,
       pg_current_xact_id()::text AS xid
  FROM wallets WHERE id = (SELECT b.id FROM bench_wallets b WHERE b.n = :w) FOR UPDATE
\gset
\set new_balance :balance_minor + :amount
\set new_version :version + 1
UPDATE wallets SET balance_minor = :new_balance, status = :status, version = :new_version, updated_at = now() WHERE id = :id;
WITH t AS (INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at, actor_issuer, actor_subject) VALUES (:tx_id, :kind, :currency, :amount, :corr_id, :occurred_at, :actor_issuer, :actor_subject)) INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at) SELECT :tx_id, e.wallet_id, :currency, e.amount_minor, e.balance_after_minor, :occurred_at FROM unnest(ARRAY[:id::uuid, NULL], ARRAY[:amount::bigint, :neg_amount::bigint], ARRAY[:new_balance::bigint, NULL]) WITH ORDINALITY AS e(wallet_id, amount_minor, balance_after_minor, n) ORDER BY e.n;
INSERT INTO wallet_events (wallet_id, sequence, event_id, event_type, payload, occurred_at) SELECT :id, :new_version, :event_id, :event_type, jsonb_build_object('event_id', :event_id::text, 'occurred_at', :occurred_at::timestamptz, 'aggregate_id', :id::text, 'correlation_id', :corr_id::text, 'schema_version', 1, 'actor', jsonb_build_object('issuer', :actor_issuer::text, 'subject', :actor_subject::text), 'wallet_id', :id::text, 'transaction_id', :tx_id::text, 'amount', jsonb_build_object('value', to_char(:amount::bigint / 100.0, 'FM999999999999990.00'), 'currency', :currency::text), 'balance_after', jsonb_build_object('value', to_char(:new_balance::bigint / 100.0, 'FM999999999999990.00'), 'currency', :currency::text)), :occurred_at;
INSERT INTO outbox (event_id, event_type, aggregate_id, payload, correlation_id, traceparent, tracestate, occurred_at, sequence) SELECT :event_id, :event_type, :id, jsonb_build_object('event_id', :event_id::text, 'occurred_at', :occurred_at::timestamptz, 'aggregate_id', :id::text, 'correlation_id', :corr_id::text, 'schema_version', 1, 'actor', jsonb_build_object('issuer', :actor_issuer::text, 'subject', :actor_subject::text), 'wallet_id', :id::text, 'transaction_id', :tx_id::text, 'amount', jsonb_build_object('value', to_char(:amount::bigint / 100.0, 'FM999999999999990.00'), 'currency', :currency::text), 'balance_after', jsonb_build_object('value', to_char(:new_balance::bigint / 100.0, 'FM999999999999990.00'), 'currency', :currency::text)), :corr_id, :traceparent, NULL, :occurred_at, :new_version;
COMMIT;
