-- pgbench script of the sustained run (scripts/bench-relay, phase `sustained`): one writer
-- transaction of 10 FundsAdded outbox rows over :keys wallets (payloads shaped as the API's
-- deposits, actor included), then the NOTIFY the service sends after a writer's commit.
-- The trigger queues the rows in outbox_pending, as for the API's writes.
BEGIN;
INSERT INTO outbox (event_id, event_type, aggregate_id, payload, correlation_id, occurred_at)
SELECT s.event_id, 'FundsAdded', s.wallet,
       jsonb_build_object('event_id', s.event_id::text, 'occurred_at', now(), 'aggregate_id', s.wallet::text,
         'correlation_id', 'bench', 'schema_version', 1,
         'actor', jsonb_build_object('issuer', 'http://wallet-hub.local/dev-issuer', 'subject', 'bench-processor'),
         'wallet_id', s.wallet::text,
         'transaction_id', gen_random_uuid()::text, 'amount', jsonb_build_object('value', '1.00', 'currency', 'USD'),
         'balance_after', jsonb_build_object('value', '1.00', 'currency', 'USD')),
       'bench', now()
  FROM (SELECT gen_random_uuid() AS event_id,
               ('00000000-0000-4000-8000-' || lpad((floor(random() * :keys))::bigint::text, 12, '0'))::uuid AS wallet
          FROM generate_series(1, 10)) s;
COMMIT;
SELECT pg_notify('wallet_hub_outbox', '');
