-- scripts/bench-relay, write phase: a writer transaction that notifies inside itself, as the
-- service's deposits did before the wake-up moved after the commit (crates/outbox/src/wake.rs).
BEGIN;
INSERT INTO bench_notify (v) VALUES (1);
SELECT pg_notify('wallet_hub_outbox', '');
COMMIT;
