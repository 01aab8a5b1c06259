-- Least privilege: the service runs as a role that can read and write its rows and nothing
-- else. This migration (run by the migration owner, the role that owns the tables) creates
-- the NOLOGIN group role `wallet_hub_runtime` if it is missing and grants it DML; the login
-- role that `serve` uses (database.url) is made a member of it by whoever creates that
-- login (scripts/postgres, Compose, the Kubernetes migration Job). Not being the owner, the
-- runtime role cannot ALTER, DROP or TRUNCATE a table, nor disable the ledger's triggers.
--
-- Creating a role needs CREATEROLE (or superuser); where the migration owner has neither,
-- create `wallet_hub_runtime` beforehand (the DO block then leaves it alone).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_hub_runtime') THEN
        CREATE ROLE wallet_hub_runtime NOLOGIN;
    END IF;
EXCEPTION
    -- Another database's migration created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO wallet_hub_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO wallet_hub_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO wallet_hub_runtime;

-- The ledger and the status history are append-only: no UPDATE or DELETE, even by mistake.
REVOKE UPDATE, DELETE ON ledger_transactions, ledger_entries, wallet_status_changes
    FROM wallet_hub_runtime;

-- The migration history is the owner's alone.
DO $$
BEGIN
    IF to_regclass('_sqlx_migrations') IS NOT NULL THEN
        REVOKE ALL ON _sqlx_migrations FROM wallet_hub_runtime;
    END IF;
END
$$;

-- Tables and sequences that later migrations create get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO wallet_hub_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO wallet_hub_runtime;

-- The relay vacuums the outbox_pending queue after a burst of dequeues; VACUUM needs the
-- table's owner or, from PostgreSQL 17 on, the MAINTAIN privilege. On older servers the
-- runtime role's VACUUM is skipped with a warning and autovacuum (tuned for this table in
-- 20261126000006) does the work.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON outbox_pending TO wallet_hub_runtime';
    END IF;
END
$$;
