//! Migrations over data written under the schema they replace.

use std::borrow::Cow;

use secrecy::ExposeSecret;
use sqlx::PgPool;

/// The first migration of the outbox_pending queue (0006).
const QUEUE_MIGRATION: i64 = 20261126000006;

#[tokio::test]
async fn unsent_outbox_rows_move_to_the_queue_with_their_delivery_state_and_sent_ones_do_not() {
    let (settings, _topics) = wallet_hub_tests::test_settings().await;
    let pool = PgPool::connect(settings.database.migrate_url.expose_secret())
        .await
        .expect("pool");
    let mut before_queue = sqlx::migrate!("../migrations");
    before_queue.migrations = Cow::Owned(
        before_queue
            .migrations
            .iter()
            .filter(|m| m.version < QUEUE_MIGRATION)
            .cloned()
            .collect(),
    );
    before_queue.run(&pool).await.expect("migrations 0001-0005");
    sqlx::raw_sql(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at, sent, sent_at) \
             VALUES (gen_random_uuid(), 'FundsAdded', gen_random_uuid(), '{}', now(), TRUE, now()); \
         INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
             VALUES (gen_random_uuid(), 'FundsAdded', gen_random_uuid(), '{}', now()); \
         INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at, \
                             attempts, last_error, parked_at, next_attempt_at) \
             VALUES (gen_random_uuid(), 'WalletExploded', gen_random_uuid(), '{}', now(), \
                     10, 'boom', now(), now())",
    )
    .execute(&pool)
    .await
    .expect("rows under the old schema");

    wallet_hub::database::MIGRATOR
        .run(&pool)
        .await
        .expect("the rest of the migrations");

    let queued: Vec<(i64, i32, Option<String>, bool)> = sqlx::query_as(
        "SELECT id, attempts, last_error, parked_at IS NOT NULL FROM outbox_pending ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("queue");
    assert_eq!(
        queued,
        [(2, 0, None, false), (3, 10, Some("boom".to_owned()), true)],
        "the sent row is not queued; the parked one stays parked"
    );
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("log");
    assert_eq!(logged, 3, "the log keeps every row");
}

/// The migration that gave wallets their event streams.
const STREAMS_MIGRATION: i64 = 20261207100000;

/// The database as the schema before streams left it: migrations up to `before`.
async fn migrated_until(before: i64) -> (wallet_hub::config::Settings, PgPool) {
    let (settings, _topics) = wallet_hub_tests::test_settings().await;
    let pool = PgPool::connect(settings.database.migrate_url.expose_secret())
        .await
        .expect("pool");
    let mut earlier = sqlx::migrate!("../migrations");
    earlier.migrations = Cow::Owned(
        earlier
            .migrations
            .iter()
            .filter(|m| m.version < before)
            .cloned()
            .collect(),
    );
    earlier.run(&pool).await.expect("the earlier migrations");
    (settings, pool)
}

/// Wallets A (USD: deposit 10.00, withdrawal 1.00, transfer 2.00 to B, a hold of 3.00 for B
/// captured for 1.00, a hold of 1.00 voided, frozen), B (USD: the transfer and the capture
/// in) and C (EUR, untouched), written as the service wrote them before streams.
const OLD_HISTORY: &str = "
INSERT INTO users (id, email, email_normalized, name, created_at, issuer, subject) VALUES
  ('00000000-0000-7000-8000-0000000000a0', 'ada@example.com', 'ada@example.com', 'Ada',
   '2026-12-01T10:00:00Z', 'https://issuer.example', 'ada');
INSERT INTO wallets (id, user_id, name, currency, balance_minor, held_minor, status, version, created_at, updated_at) VALUES
  ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000a0', 'Main', 'USD', 600, 0, 'frozen', 9, '2026-12-01T10:00:01Z', now()),
  ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-0000000000a0', 'Savings', 'USD', 300, 0, 'active', 3, '2026-12-01T10:00:02Z', now()),
  ('00000000-0000-7000-8000-00000000000c', '00000000-0000-7000-8000-0000000000a0', 'Euro', 'EUR', 0, 0, 'active', 1, '2026-12-01T10:00:03Z', now());
INSERT INTO holds (id, wallet_id, to_wallet_id, currency, amount_minor, captured_minor, status, description, expires_at, created_at, closed_at) VALUES
  ('00000000-0000-7000-8000-0000000000f1', '00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-00000000000b', 'USD', 300, 100, 'captured', NULL, '2026-12-01T11:00:04Z', '2026-12-01T10:00:04Z', '2026-12-01T10:00:05Z'),
  ('00000000-0000-7000-8000-0000000000f2', '00000000-0000-7000-8000-00000000000a', NULL, 'USD', 100, NULL, 'voided', NULL, '2026-12-01T11:00:06Z', '2026-12-01T10:00:06Z', '2026-12-01T10:00:07Z');
INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at, actor_issuer, actor_subject, hold_id) VALUES
  ('00000000-0000-7000-8000-0000000000d1', 'deposit', 'USD', 1000, 'c-1', '2026-12-01T10:00:01.1Z', 'https://issuer.example', 'processor', NULL),
  ('00000000-0000-7000-8000-0000000000d2', 'withdrawal', 'USD', 100, 'c-2', '2026-12-01T10:00:02.1Z', 'https://issuer.example', 'ada', NULL),
  ('00000000-0000-7000-8000-0000000000d3', 'transfer', 'USD', 200, 'c-3', '2026-12-01T10:00:03.1Z', 'https://issuer.example', 'ada', NULL),
  ('00000000-0000-7000-8000-0000000000f1', 'hold', 'USD', 300, 'c-4', '2026-12-01T10:00:04Z', 'https://issuer.example', 'ada', '00000000-0000-7000-8000-0000000000f1'),
  ('00000000-0000-7000-8000-0000000000d5', 'capture', 'USD', 100, 'c-5', '2026-12-01T10:00:05Z', 'https://issuer.example', 'ada', '00000000-0000-7000-8000-0000000000f1'),
  ('00000000-0000-7000-8000-0000000000f2', 'hold', 'USD', 100, 'c-6', '2026-12-01T10:00:06Z', 'https://issuer.example', 'ada', '00000000-0000-7000-8000-0000000000f2'),
  ('00000000-0000-7000-8000-0000000000d7', 'void', 'USD', 100, 'c-7', '2026-12-01T10:00:07Z', 'https://issuer.example', 'ada', '00000000-0000-7000-8000-0000000000f2');
INSERT INTO ledger_entries (transaction_id, wallet_id, currency, account, amount_minor, balance_after_minor, created_at) VALUES
  ('00000000-0000-7000-8000-0000000000d1', '00000000-0000-7000-8000-00000000000a', 'USD', 'balance', 1000, 1000, '2026-12-01T10:00:01.1Z'),
  ('00000000-0000-7000-8000-0000000000d1', NULL, 'USD', 'balance', -1000, NULL, '2026-12-01T10:00:01.1Z'),
  ('00000000-0000-7000-8000-0000000000d2', '00000000-0000-7000-8000-00000000000a', 'USD', 'balance', -100, 900, '2026-12-01T10:00:02.1Z'),
  ('00000000-0000-7000-8000-0000000000d2', NULL, 'USD', 'balance', 100, NULL, '2026-12-01T10:00:02.1Z'),
  ('00000000-0000-7000-8000-0000000000d3', '00000000-0000-7000-8000-00000000000a', 'USD', 'balance', -200, 700, '2026-12-01T10:00:03.1Z'),
  ('00000000-0000-7000-8000-0000000000d3', '00000000-0000-7000-8000-00000000000b', 'USD', 'balance', 200, 200, '2026-12-01T10:00:03.1Z'),
  ('00000000-0000-7000-8000-0000000000f1', '00000000-0000-7000-8000-00000000000a', 'USD', 'held', 300, 300, '2026-12-01T10:00:04Z'),
  ('00000000-0000-7000-8000-0000000000f1', NULL, 'USD', 'held', -300, NULL, '2026-12-01T10:00:04Z'),
  ('00000000-0000-7000-8000-0000000000d5', '00000000-0000-7000-8000-00000000000a', 'USD', 'held', -300, 0, '2026-12-01T10:00:05Z'),
  ('00000000-0000-7000-8000-0000000000d5', NULL, 'USD', 'held', 300, NULL, '2026-12-01T10:00:05Z'),
  ('00000000-0000-7000-8000-0000000000d5', '00000000-0000-7000-8000-00000000000a', 'USD', 'balance', -100, 600, '2026-12-01T10:00:05Z'),
  ('00000000-0000-7000-8000-0000000000d5', '00000000-0000-7000-8000-00000000000b', 'USD', 'balance', 100, 300, '2026-12-01T10:00:05Z'),
  ('00000000-0000-7000-8000-0000000000f2', '00000000-0000-7000-8000-00000000000a', 'USD', 'held', 100, 100, '2026-12-01T10:00:06Z'),
  ('00000000-0000-7000-8000-0000000000f2', NULL, 'USD', 'held', -100, NULL, '2026-12-01T10:00:06Z'),
  ('00000000-0000-7000-8000-0000000000d7', '00000000-0000-7000-8000-00000000000a', 'USD', 'held', -100, 0, '2026-12-01T10:00:07Z'),
  ('00000000-0000-7000-8000-0000000000d7', NULL, 'USD', 'held', 100, NULL, '2026-12-01T10:00:07Z');
INSERT INTO wallet_status_changes (id, wallet_id, from_status, to_status, actor_issuer, actor_subject, correlation_id, created_at) VALUES
  ('00000000-0000-7000-8000-0000000000e1', '00000000-0000-7000-8000-00000000000a', 'active', 'frozen', 'https://issuer.example', 'risk', 'c-8', '2026-12-01T10:00:08Z');
";

async fn stream_types(pool: &PgPool, wallet: &str) -> Vec<(i64, String, bool)> {
    sqlx::query_as(
        "SELECT sequence, event_type, migrated FROM wallet_events \
         WHERE wallet_id = $1::uuid ORDER BY sequence",
    )
    .bind(wallet)
    .fetch_all(pool)
    .await
    .expect("stream")
}

#[tokio::test]
async fn wallets_written_before_streams_get_streams_derived_from_their_history_that_fold_into_them()
{
    let (settings, pool) = migrated_until(STREAMS_MIGRATION).await;
    sqlx::raw_sql(OLD_HISTORY)
        .execute(&pool)
        .await
        .expect("history under the old schema");

    wallet_hub::database::migrate(&settings.database)
        .await
        .expect("the streams migration and the derivation");

    let a = "00000000-0000-7000-8000-00000000000a";
    let b = "00000000-0000-7000-8000-00000000000b";
    let c = "00000000-0000-7000-8000-00000000000c";
    let types = |stream: Vec<(i64, String, bool)>| -> Vec<(i64, String)> {
        assert!(stream.iter().all(|(_, _, migrated)| *migrated));
        stream.into_iter().map(|(s, t, _)| (s, t)).collect()
    };
    let expected = |list: &[&str]| -> Vec<(i64, String)> {
        (1..).zip(list.iter().map(|t| (*t).to_owned())).collect()
    };
    assert_eq!(
        types(stream_types(&pool, a).await),
        expected(&[
            "WalletCreated",
            "FundsAdded",
            "FundsWithdrawn",
            "FundsTransferred",
            "HoldPlaced",
            "HoldCaptured",
            "HoldPlaced",
            "HoldVoided",
            "WalletStatusChanged",
        ])
    );
    assert_eq!(
        types(stream_types(&pool, b).await),
        expected(&["WalletCreated", "FundsReceived", "FundsReceived"])
    );
    assert_eq!(
        types(stream_types(&pool, c).await),
        expected(&["WalletCreated"])
    );

    // Each stream folds into its row, and the new write path continues where it ends.
    let mut conn = pool.acquire().await.expect("connection");
    for wallet in [a, b, c] {
        let id: domain::WalletId = wallet.parse().expect("id");
        let stream = store::streams::read_all(&mut conn, id)
            .await
            .expect("reads");
        let row = store::wallets::find(&mut conn, id)
            .await
            .expect("row")
            .expect("exists");
        assert_eq!(domain::fold(&stream).expect("folds"), row, "{wallet}");
    }
    drop(conn);
    let topics = wallet_hub_tests::Topics::new(&uuid::Uuid::now_v7().simple().to_string());
    let app = wallet_hub_tests::start(settings.clone(), topics).await;
    app.operator()
        .deposit(
            b.parse().expect("id"),
            &wallet_hub_client::Amount::new("1.00"),
            None,
        )
        .await
        .expect("a deposit into a migrated wallet");
    assert_eq!(
        stream_types(&pool, b)
            .await
            .last()
            .map(|(s, t, m)| (*s, t.clone(), *m)),
        Some((4, "FundsAdded".to_owned(), false))
    );
    // Running the migration again changes nothing.
    wallet_hub::database::migrate(&settings.database)
        .await
        .expect("again");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM wallet_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 9 + 4 + 1);
}

#[tokio::test]
async fn a_wallet_whose_history_does_not_add_up_to_its_row_stops_the_derivation_and_nothing_is_written()
 {
    let (settings, pool) = migrated_until(STREAMS_MIGRATION).await;
    sqlx::raw_sql(OLD_HISTORY)
        .execute(&pool)
        .await
        .expect("history under the old schema");
    // A version the history does not reach (two changes nobody recorded).
    sqlx::query("UPDATE wallets SET version = 5 WHERE id = '00000000-0000-7000-8000-00000000000b'")
        .execute(&pool)
        .await
        .expect("tampered");

    let error = wallet_hub::database::migrate(&settings.database)
        .await
        .expect_err("the derivation refuses");
    let chain = format!("{error:#}");
    assert!(
        chain.contains("00000000-0000-7000-8000-00000000000b") && chain.contains("version 3"),
        "the error names the wallet and what differs: {chain}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM wallet_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing derived");
}
