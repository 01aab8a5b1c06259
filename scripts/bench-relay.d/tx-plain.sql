-- scripts/bench-relay, write phase: the same writer transaction without the notification.
BEGIN;
INSERT INTO bench_notify (v) VALUES (1);
COMMIT;
