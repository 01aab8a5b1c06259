//! A poll's ready records of one partition apply in one transaction (inbox rows and effects
//! set-based), and batching changes none of the per-record guarantees: a copy inside a
//! batch applies once, a record the database refuses is dead-lettered alone, a transient
//! failure falls back to one record per transaction in partition order, and a redelivery
//! after a commit whose offsets were never stored applies nothing twice.

use chrono::Utc;
use cloudevents::AttributesReader;
use consumers::{WalletActivityProjection, WalletCreatedEventConsumer};
use domain::{DomainEvent, EventContext, UserId, Wallet, WalletId, WalletName};
use kafka::{EventHandler, EventProducer, Outcome, ReceivedEvent};
use telemetry::TraceHeaders;
use uuid::Uuid;
use wallet_hub_tests::{TestApp, cloud_event, deposit_event, eventually, header, spawn_app_with};

use super::consumed;

/// A migrated app whose consumers do not run yet, so records put on its topics are all
/// ready when they start (see [`with_consumers`]).
async fn app_without_consumers() -> TestApp {
    spawn_app_with(|settings| {
        settings.relay.enabled = false;
        settings.consumer.enabled = false;
    })
    .await
}

/// The same app (database, topics, group) restarted with its consumers running.
async fn with_consumers(app: TestApp) -> TestApp {
    let (mut settings, topics) = (app.settings.clone(), app.topics.clone());
    app.stop().await.expect("clean stop");
    settings.consumer.enabled = true;
    wallet_hub_tests::start(settings, topics).await
}

/// Puts `events` on `topic`, all with one key (so on one partition), in this order.
async fn produce(app: &TestApp, topic: &str, events: &[DomainEvent]) {
    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    for event in events {
        producer
            .send(
                topic,
                "one-partition",
                cloud_event(event),
                &TraceHeaders::default(),
            )
            .expect("enqueued")
            .await
            .expect("delivered");
    }
}

/// Deposits of `minor` cents, each to its own new wallet id.
fn deposits(minors: &[i64]) -> (Vec<Uuid>, Vec<DomainEvent>) {
    let wallets: Vec<Uuid> = minors.iter().map(|_| Uuid::now_v7()).collect();
    let events = wallets
        .iter()
        .zip(minors)
        .map(|(wallet, minor)| deposit_event(*wallet, *minor))
        .collect();
    (wallets, events)
}

/// A wallet's activity row: total in (minor units), events applied and the id of the
/// transaction that last wrote it (`xmin`).
async fn activity_row(app: &TestApp, wallet: Uuid) -> Option<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT total_in_minor, events_applied, xmin::text::bigint FROM wallet_activity \
         WHERE wallet_id = $1",
    )
    .bind(wallet)
    .fetch_optional(&app.pool)
    .await
    .expect("activity row")
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.pool)
        .await
        .expect("scalar")
}

fn received(events: &[DomainEvent], topic: &str) -> Vec<ReceivedEvent> {
    events
        .iter()
        .zip(0..)
        .map(|(event, offset)| ReceivedEvent {
            event: cloud_event(event),
            topic: topic.to_owned(),
            partition: 0,
            offset,
        })
        .collect()
}

#[tokio::test]
async fn a_partitions_ready_records_apply_in_one_transaction() {
    let app = app_without_consumers().await;
    let minors: Vec<i64> = (1..=30).collect();
    let (wallets, events) = deposits(&minors);
    let topic = app.topics.funds_added.clone();
    produce(&app, &topic, &events).await;
    let app = with_consumers(app).await;

    eventually("all thirty applied", || async {
        (scalar(&app, "SELECT count(*) FROM wallet_activity").await == 30).then_some(())
    })
    .await;
    for (wallet, minor) in wallets.iter().zip(&minors) {
        let (total_in, applied, _) = activity_row(&app, *wallet).await.expect("a row");
        assert_eq!((total_in, applied), (*minor, 1));
    }
    let transactions = scalar(
        &app,
        "SELECT count(DISTINCT xmin::text) FROM (\
           SELECT xmin FROM wallet_activity \
           UNION ALL SELECT xmin FROM inbox WHERE consumer = 'wallet-activity') AS written",
    )
    .await;
    assert_eq!(
        transactions, 1,
        "the thirty inbox rows and activity rows were written by one transaction"
    );
    assert_eq!(consumed(&app, "ok").await, 30);
}

#[tokio::test]
async fn a_record_repeated_inside_a_batch_applies_once() {
    let app = app_without_consumers().await;
    let (wallet, other) = (Uuid::now_v7(), Uuid::now_v7());
    let first = deposit_event(wallet, 100);
    let second = deposit_event(other, 5);
    let third = deposit_event(wallet, 200);
    let topic = app.topics.funds_added.clone();
    produce(&app, &topic, &[first.clone(), second, first, third]).await;
    let app = with_consumers(app).await;

    eventually("the batch applied", || async {
        (consumed(&app, "ok").await + consumed(&app, "duplicate").await == 4).then_some(())
    })
    .await;
    let (total_in, applied, xmin) = activity_row(&app, wallet).await.expect("a row");
    assert_eq!((total_in, applied), (300, 2), "the copy added nothing");
    let (_, _, other_xmin) = activity_row(&app, other).await.expect("a row");
    assert_eq!(xmin, other_xmin, "one batch, one transaction");
    assert_eq!(
        (
            consumed(&app, "ok").await,
            consumed(&app, "duplicate").await
        ),
        (3, 1)
    );
    assert_eq!(scalar(&app, "SELECT count(*) FROM inbox").await, 3);
}

#[tokio::test]
async fn a_record_the_database_refuses_in_the_middle_of_a_batch_is_dead_lettered_and_its_neighbours_apply()
 {
    let app = app_without_consumers().await;
    // 666 cents breaks a constraint of this test's database: a permanent failure.
    sqlx::query("ALTER TABLE wallet_activity ADD CONSTRAINT poison CHECK (total_in_minor <> 666)")
        .execute(&app.pool)
        .await
        .expect("constraint");
    let (wallets, events) = deposits(&[100, 200, 666, 300, 400]);
    let poison_id = cloud_event(&events[2]).id().to_owned();
    let topic = app.topics.funds_added.clone();
    produce(&app, &topic, &events).await;
    let app = with_consumers(app).await;

    let dead =
        wallet_hub_tests::read_records(&app.settings.kafka.brokers, &format!("{topic}.dlq"), 1)
            .await;
    assert_eq!(
        header(&dead[0], "ce_id").as_deref(),
        Some(poison_id.as_str())
    );
    assert_eq!(
        header(&dead[0], "dlq_error_class").as_deref(),
        Some("permanent")
    );
    assert!(
        header(&dead[0], "dlq_error_message").is_some_and(|m| m.contains("poison")),
        "the database's reason"
    );
    eventually("the neighbours applied", || async {
        (consumed(&app, "ok").await == 4).then_some(())
    })
    .await;
    for (wallet, minor) in wallets.iter().zip([100, 200, 666, 300, 400]) {
        let row = activity_row(&app, *wallet).await;
        if minor == 666 {
            assert_eq!(row, None, "the poison record changed nothing");
        } else {
            assert_eq!(
                row.map(|(total, applied, _)| (total, applied)),
                Some((minor, 1))
            );
        }
    }
    assert_eq!(consumed(&app, "dead_lettered").await, 1);
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM inbox").await,
        4,
        "the poison record left no inbox row"
    );
}

#[tokio::test]
async fn a_batch_failing_transiently_is_retried_then_applied_one_record_per_transaction_in_order() {
    let app = app_without_consumers().await;
    // 777 cents meets a serialization failure (transient) three times: both attempts of
    // the batch, then the record's first attempt alone.
    sqlx::raw_sql(
        "CREATE SEQUENCE flaky_attempts; \
         CREATE FUNCTION flaky() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ \
         BEGIN \
           IF NEW.total_in_minor = 777 AND nextval('flaky_attempts') <= 3 THEN \
             RAISE EXCEPTION 'flaky' USING ERRCODE = '40001'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER flaky BEFORE INSERT ON wallet_activity \
           FOR EACH ROW EXECUTE FUNCTION flaky();",
    )
    .execute(&app.pool)
    .await
    .expect("trigger");
    let minors = [100, 777, 300];
    let (wallets, events) = deposits(&minors);
    let topic = app.topics.funds_added.clone();
    produce(&app, &topic, &events).await;
    let app = with_consumers(app).await;

    eventually("all three applied", || async {
        (consumed(&app, "ok").await == 3).then_some(())
    })
    .await;
    let mut xmins = Vec::new();
    for (wallet, minor) in wallets.iter().zip(minors) {
        let (total_in, applied, xmin) = activity_row(&app, *wallet).await.expect("a row");
        assert_eq!((total_in, applied), (minor, 1));
        xmins.push(xmin);
    }
    assert!(
        xmins.windows(2).all(|w| w[0] < w[1]),
        "one transaction each, in partition order: {xmins:?}"
    );
    assert_eq!(
        scalar(&app, "SELECT last_value FROM flaky_attempts").await,
        4,
        "two batch attempts, then the record alone twice"
    );
    assert_eq!(
        consumed(&app, "retried").await,
        1,
        "the record's one retry alone"
    );
    assert_eq!(consumed(&app, "dead_lettered").await, 0);
}

#[tokio::test]
async fn a_redelivery_after_a_commit_whose_offsets_were_never_stored_applies_nothing_twice() {
    let app = app_without_consumers().await;
    let (wallets, mut events) = deposits(&[100, 200, 300]);
    events.push(events[0].clone());
    let topic = app.topics.funds_added.clone();
    let projection = WalletActivityProjection::new(app.pool.clone());
    // The batch commits, then the process dies before storing the offsets.
    let outcomes = projection
        .handle_batch(&received(&events, &topic))
        .await
        .expect("applied");
    assert_eq!(
        outcomes,
        [
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Duplicate
        ]
    );
    let mut before = Vec::new();
    for wallet in &wallets {
        before.push(activity_row(&app, *wallet).await.expect("a row"));
    }
    produce(&app, &topic, &events).await;
    let app = with_consumers(app).await;

    eventually("the four records redelivered", || async {
        (consumed(&app, "duplicate").await == 4).then_some(())
    })
    .await;
    for (wallet, before) in wallets.iter().zip(&before) {
        assert_eq!(
            activity_row(&app, *wallet).await.as_ref(),
            Some(before),
            "not even rewritten: same totals, same xmin"
        );
    }
    assert_eq!(consumed(&app, "ok").await, 0);
    assert_eq!(scalar(&app, "SELECT count(*) FROM inbox").await, 3);
}

fn wallet_created(wallet: WalletId, user: UserId, name: &str) -> DomainEvent {
    let ctx = EventContext::new(Utc::now(), "batch");
    let name = WalletName::parse(name).expect("valid");
    let currency = "EUR".parse().expect("ISO 4217");
    Wallet::create(wallet, user, name, currency, &ctx).1.into()
}

#[tokio::test]
async fn a_batch_of_wallet_created_events_sends_one_welcome_per_wallet() {
    let app = app_without_consumers().await;
    let user = UserId::new();
    let (a, b) = (WalletId::new(), WalletId::new());
    let first = wallet_created(a, user, "Savings");
    // Another event about wallet a (a new id, not a copy): a's welcome is already sent.
    let again = wallet_created(a, user, "Other");
    let events = [
        first.clone(),
        wallet_created(b, user, "Travel"),
        first.clone(),
        again,
    ];
    let consumer = WalletCreatedEventConsumer::new(app.pool.clone());
    let outcomes = consumer
        .handle_batch(&received(&events, &app.topics.wallet_created))
        .await
        .expect("applied");
    assert_eq!(
        outcomes,
        [
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Applied
        ]
    );
    let sent: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(
        "SELECT wallet_id, event_id, message, xmin::text::bigint FROM notifications \
         ORDER BY message",
    )
    .fetch_all(&app.pool)
    .await
    .expect("notifications");
    assert_eq!(sent.len(), 2, "one welcome per wallet");
    let welcome_a = sent
        .iter()
        .find(|n| n.0 == a.as_uuid())
        .expect("a's welcome");
    assert_eq!(
        welcome_a.1,
        first.metadata().event_id.as_uuid(),
        "the first event's"
    );
    assert!(welcome_a.2.contains("Savings"), "{}", welcome_a.2);
    assert!(sent.iter().any(|n| n.0 == b.as_uuid()));
    assert_eq!(sent[0].3, sent[1].3, "one transaction");
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM inbox").await,
        3,
        "three distinct events"
    );
    // Redelivered, the whole batch is a duplicate.
    let outcomes = consumer
        .handle_batch(&received(&events, &app.topics.wallet_created))
        .await
        .expect("applied");
    assert!(outcomes.iter().all(|o| *o == Outcome::Duplicate));
}
