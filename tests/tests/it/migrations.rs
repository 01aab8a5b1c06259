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
