//! What a refused request must leave alone: users, wallets (balances, held amounts,
//! statuses, versions), holds, the ledger, status changes, idempotency keys and the outbox, as row counts and
//! checksums, read in one statement so the picture is consistent.
//!
//! The outbox is compared by its rows (count and last id), not by their `sent` flags: the
//! relay publishes earlier rows in the background while a test runs.

use sqlx::PgPool;
use wallet_hub_tests::TestApp;

use super::world::{Call, Reply};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Snapshot {
    users: i64,
    users_checksum: String,
    wallets: i64,
    wallets_checksum: String,
    holds_checksum: String,
    ledger_transactions: i64,
    ledger_entries: i64,
    ledger_checksum: String,
    status_changes: i64,
    idempotency_keys: i64,
    idempotency_checksum: String,
    outbox_rows: i64,
    outbox_last_id: Option<i64>,
}

const SNAPSHOT: &str = "\
SELECT
  (SELECT count(*) FROM users) AS users,
  (SELECT md5(coalesce(string_agg(concat_ws(':', id, issuer, subject, email_normalized, name),
                                  ',' ORDER BY id), '')) FROM users) AS users_checksum,
  (SELECT count(*) FROM wallets) AS wallets,
  (SELECT md5(coalesce(string_agg(concat_ws(':', id, user_id, status, balance_minor, held_minor,
                                            version),
                                  ',' ORDER BY id), '')) FROM wallets) AS wallets_checksum,
  (SELECT md5(coalesce(string_agg(concat_ws(':', id, status, captured_minor),
                                  ',' ORDER BY id), '')) FROM holds) AS holds_checksum,
  (SELECT count(*) FROM ledger_transactions) AS ledger_transactions,
  (SELECT count(*) FROM ledger_entries) AS ledger_entries,
  (SELECT md5(coalesce(string_agg(concat_ws(':', transaction_id, wallet_id, amount_minor),
                                  ',' ORDER BY id), '')) FROM ledger_entries) AS ledger_checksum,
  (SELECT count(*) FROM wallet_status_changes) AS status_changes,
  (SELECT count(*) FROM idempotency_keys) AS idempotency_keys,
  (SELECT md5(coalesce(string_agg(concat_ws(':', caller, key, route, response_status),
                                  ',' ORDER BY caller, key), '')) FROM idempotency_keys)
     AS idempotency_checksum,
  (SELECT count(*) FROM outbox) AS outbox_rows,
  (SELECT max(id) FROM outbox) AS outbox_last_id";

impl Snapshot {
    pub async fn take(pool: &PgPool) -> Self {
        sqlx::query_as(SNAPSHOT)
            .fetch_one(pool)
            .await
            .expect("snapshot of the database")
    }
}

/// Sends `call` and checks that it is refused with `status` and `problem` and changes
/// nothing.
pub async fn refused(app: &TestApp, call: Call, status: u16, problem: &str) -> Reply {
    let before = Snapshot::take(&app.pool).await;
    let reply = call.send(app).await;
    assert_eq!(
        (reply.status, reply.problem()),
        (status, problem),
        "{reply:?}"
    );
    assert_eq!(Snapshot::take(&app.pool).await, before, "nothing changed");
    reply
}
