#!/usr/bin/env bash
# Compose's PostgreSQL runs this once, when it initialises a new data volume
# (/docker-entrypoint-initdb.d): the login role the service runs as, a member of the
# NOLOGIN group role `wallet_hub_runtime` that the migrations grant DML to (the migration
# creates the group role too; creating it here first lets the login join it now).
# POSTGRES_USER, who owns the database and runs the migrations, stays the only owner.
set -euo pipefail
: "${WALLET_HUB_DB_APP_USER:?set WALLET_HUB_DB_APP_USER}"
: "${WALLET_HUB_DB_APP_PASSWORD:?set WALLET_HUB_DB_APP_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_user="$WALLET_HUB_DB_APP_USER" -v app_password="$WALLET_HUB_DB_APP_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE wallet_hub_runtime NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_hub_runtime') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE wallet_hub_runtime', :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SQL
