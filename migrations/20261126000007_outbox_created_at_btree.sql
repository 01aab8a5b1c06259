-- Retention and the ops rates select outbox rows by created_at. The BRIN index of 0006
-- could not bound those scans: pages written since the last summary are always read, and
-- under a steady write load summaries lag (autovacuum's work items), so the retention
-- query every second read more and more of the log, and its snapshot kept VACUUM from
-- cleaning the pending queue (see docs/benchmarks-relay.md, sustained run). A B-tree on a
-- column that only grows costs one rightmost-leaf insert per row and stops each scan at
-- the cutoff.
DROP INDEX outbox_created_at;
CREATE INDEX outbox_created_at ON outbox (created_at);
