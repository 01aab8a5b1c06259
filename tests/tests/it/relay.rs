//! The relay against the real database and broker: failures leave rows unsent and they are
//! published once the cause is gone (an unreachable broker opens the circuit and counts
//! nothing against the rows); rows are claimed by state, so a late commit with a
//! lower id is not skipped.

use chrono::Utc;
use domain::{DomainEvent, EventContext, UserId, Wallet, WalletId, WalletName};
use event_bindings::EventBindings;
use kafka::EventProducer;
use outbox::{Relay, RelayConfig, RelayState};
use rdkafka::Message;
use telemetry::TraceHeaders;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use wallet_hub_tests::{TestApp, eventually, header, read_records, spawn_app_with};

/// An app that writes but does not relay, so the test runs relays itself.
async fn app_without_relay() -> TestApp {
    spawn_app_with(|settings| {
        settings.relay.enabled = false;
        settings.consumer.enabled = false;
    })
    .await
}

/// A relay of `app`'s outbox to `brokers` that publishes one round, at its start: its next
/// poll is ten minutes away and nothing else wakes it. A round of the few rows these tests
/// write is one batch.
fn relay(app: &TestApp, brokers: &str) -> Relay {
    relay_polling(app, brokers, 600_000)
}

/// A relay of `app`'s outbox to `brokers` that polls every `poll_interval_ms`.
fn relay_polling(app: &TestApp, brokers: &str, poll_interval_ms: u64) -> Relay {
    relay_with(app, brokers, relay_config(poll_interval_ms))
}

fn relay_with(app: &TestApp, brokers: &str, config: RelayConfig) -> Relay {
    let mut kafka = app.settings.kafka.clone();
    kafka.brokers = brokers.to_owned();
    kafka.message_timeout_ms = 2_000;
    let bindings = EventBindings::new(&app.settings.bindings).expect("valid bindings");
    Relay::new(app.pool.clone(), kafka, bindings, config).expect("producer")
}

/// The tests' relay settings: no `NOTIFY`, batches of 100, retries at once.
fn relay_config(poll_interval_ms: u64) -> RelayConfig {
    RelayConfig {
        enabled: true,
        poll_interval_ms,
        batch_size: 100,
        notify: false,
        max_attempts: 3,
        // Retry at once: a failed row is due again in the next round.
        retry_base_ms: 0,
        retry_max_ms: 0,
        retention_hours: 1,
        retention_batch: 2,
        vacuum_after_rows: 0,
        leader_timeout_ms: 10_000,
    }
}

/// A relay running its real loop in the background, as the service runs it.
struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    fn start(relay: Relay) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(relay.run(shutdown.clone()));
        Self { shutdown, handle }
    }

    /// Stops the relay the way the service does and waits until it has.
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("the relay stops");
    }
}

/// Runs `relay` until `done` says its work shows in the database, then stops it.
async fn run_relay_until<F, Fut>(relay: Relay, what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let running = Running::start(relay);
    eventually(what, done).await;
    running.stop().await;
}

/// `Some` once a relay's own session sits idle after a lock attempt: a leader's session
/// has run its batches since, so this one stands by.
async fn relay_standing_by(app: &TestApp) -> Option<()> {
    let standing_by: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND state = 'idle' AND query LIKE 'SELECT pg_try_advisory_lock(%')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("activity");
    standing_by.then_some(())
}

/// `Some` once every outbox row has been published (has left the queue).
async fn all_sent(app: &TestApp) -> Option<()> {
    rows(app).await.iter().all(|row| row.1).then_some(())
}

/// `(id, sent, attempts, last_error)` of every outbox row, by id: a row is sent once it
/// left the queue.
async fn rows(app: &TestApp) -> Vec<(i64, bool, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT o.id, p.id IS NULL, COALESCE(p.attempts, 0), p.last_error \
         FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id ORDER BY o.id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows")
}

#[tokio::test]
async fn an_unreachable_broker_opens_the_circuit_counts_no_attempt_and_the_row_goes_out_after() {
    let app = app_without_relay().await;
    let wallet = app.create_wallet_for(app.fixture_user().await, "USD").await;

    // Nothing listens on port 1: every delivery times out after message.timeout.ms, and
    // more than max_attempts (3) rounds of it pass while the circuit is open.
    let cut_off = relay(&app, "127.0.0.1:1");
    let status = cut_off.status();
    assert_eq!(
        status.state(),
        RelayState::Standby,
        "not leading before it runs"
    );
    let running = Running::start(cut_off);
    let reason = eventually("the circuit to open", || async {
        match status.state() {
            RelayState::Open { reason, .. } => Some(reason),
            _ => None,
        }
    })
    .await;
    assert!(
        reason.contains("timed out") || reason.contains("Timed out"),
        "{reason}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert!(
        matches!(status.state(), RelayState::Open { .. }),
        "still open: the broker still does not answer"
    );
    running.stop().await;
    let after_outage = rows(&app).await;
    assert!(
        !after_outage[0].1,
        "not marked sent without a delivery report"
    );
    assert_eq!(after_outage[0].2, 0, "an outage counts no attempt");
    assert_eq!(after_outage[0].3, None, "and blames nothing on the row");

    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the row to be published",
        || all_sent(&app),
    )
    .await;
    let after_success = rows(&app).await;
    assert!(after_success[0].1, "marked sent after delivery");

    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 1).await;
    let key = records[0]
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    assert_eq!(key.as_deref(), wallet["id"].as_str());
}

#[tokio::test]
async fn an_unknown_event_type_stays_unsent_holds_back_its_key_and_lets_other_keys_flow() {
    let app = app_without_relay().await;
    let x = app.create_wallet_for(app.fixture_user().await, "USD").await;
    let x_id: Uuid = x["id"].as_str().expect("id").parse().expect("uuid");
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, 'WalletExploded', $2, '{}', now())",
    )
    .bind(Uuid::now_v7())
    .bind(x_id)
    .execute(&app.pool)
    .await
    .expect("insert poison row");
    assert_eq!(app.deposit(&x_id.to_string(), "1.00").await.status(), 201);
    app.create_wallet_for(app.fixture_user().await, "EUR").await;

    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the poison row's attempt to be recorded",
        || async { (rows(&app).await[1].2 > 0).then_some(()) },
    )
    .await;
    let after = rows(&app).await;
    let state: Vec<bool> = after.iter().map(|r| r.1).collect();
    assert_eq!(
        state,
        [true, false, false, true],
        "X's deposit waits behind X's poison row"
    );
    assert_eq!(after[1].2, 1, "the poison row failed once");
    assert_eq!(after[2].2, 0, "X's deposit is held back, not attempted");
    let poison = &after[1];
    assert!(
        poison
            .3
            .as_deref()
            .is_some_and(|e| e.contains("WalletExploded"))
    );

    // The cause goes away (an operator removes the row): X's deposit follows.
    sqlx::query("DELETE FROM outbox WHERE event_type = 'WalletExploded'")
        .execute(&app.pool)
        .await
        .expect("delete poison row");
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "X's deposit to be published",
        || all_sent(&app),
    )
    .await;
    let records = read_records(&app.settings.kafka.brokers, &app.topics.funds_added, 1).await;
    assert_eq!(header(&records[0], "ce_subject"), Some(x_id.to_string()));
}

#[tokio::test]
async fn a_row_refused_in_its_delivery_report_holds_back_its_keys_later_row_and_both_arrive_in_order_after()
 {
    // The producer's MessageSets hold at most 64 KiB (a larger record goes alone), so X's
    // large event and the deposit behind it never share one: the broker judges them apart,
    // as it does whenever a MessageSet fills or one is already in flight.
    let app = spawn_app_with(|settings| {
        settings.relay.enabled = false;
        settings.consumer.enabled = false;
        settings
            .kafka
            .producer
            .insert("batch.size".to_owned(), (64 * 1024).to_string());
    })
    .await;
    let brokers = &app.settings.kafka.brokers;
    let x = app.create_wallet_for(app.fixture_user().await, "USD").await;
    let x_id: Uuid = x["id"].as_str().expect("id").parse().expect("uuid");
    // X's first deposit event carries 256 KiB of random hex (an unknown field, which the
    // schema allows): lz4 cannot shrink it under the topic's 64 KiB, and the producer's own
    // limit (message.max.bytes, 1 MB) lets it through, so it fails in its delivery report,
    // not at enqueue.
    wallet_hub_tests::limit_message_size(brokers, &app.topics.funds_added, 64 * 1024).await;
    let large = wallet_hub_tests::deposit_event(x_id, 100);
    let large_id = large.metadata().event_id.as_uuid();
    let mut payload = large.to_json().expect("serializes");
    payload["padding"] = (0..8 * 1024)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect::<String>()
        .into();
    let large_row: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, 'FundsAdded', $2, $3, now()) RETURNING id",
    )
    .bind(large_id)
    .bind(x_id)
    .bind(&payload)
    .fetch_one(&app.pool)
    .await
    .expect("insert the large row");
    // X's next event, an ordinary deposit the topic takes.
    assert_eq!(app.deposit(&x_id.to_string(), "1.00").await.status(), 201);
    let (small_row, small_id): (i64, Uuid) =
        sqlx::query_as("SELECT id, event_id FROM outbox WHERE aggregate_id = $1 AND id > $2")
            .bind(x_id)
            .bind(large_row)
            .fetch_one(&app.pool)
            .await
            .expect("the deposit's row");

    let row = |id: i64| {
        let app = &app;
        async move {
            rows(app)
                .await
                .into_iter()
                .find(|row| row.0 == id)
                .expect("the row")
        }
    };
    run_relay_until(
        relay(&app, brokers),
        "the large row's failed attempt to be recorded",
        || async { (row(large_row).await.2 > 0).then_some(()) },
    )
    .await;
    let (_, sent, attempts, error) = row(large_row).await;
    assert!(!sent, "the large row is not delivered");
    assert_eq!(attempts, 1, "its refusal counts one attempt");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("too large")),
        "{error:?}"
    );
    let (_, sent, attempts, _) = row(small_row).await;
    assert!(!sent, "X's deposit is held back behind it, not delivered");
    assert_eq!(attempts, 0, "nor attempted");

    // The cause is lifted (the topic takes records up to the broker's default): X's events
    // arrive, in outbox order, each once.
    wallet_hub_tests::limit_message_size(brokers, &app.topics.funds_added, 1_048_588).await;
    run_relay_until(
        relay_polling(&app, brokers, 50),
        "X's two deposits to be published",
        || all_sent(&app),
    )
    .await;
    let records = wallet_hub_tests::read_all_records(brokers, &app.topics.funds_added, 2).await;
    let ids: Vec<Option<String>> = records.iter().map(|r| header(r, "ce_id")).collect();
    assert_eq!(
        ids,
        [Some(large_id.to_string()), Some(small_id.to_string())],
        "X's events on the topic in outbox order"
    );
    assert_eq!(records[0].partition(), records[1].partition());
}

#[tokio::test]
async fn a_transaction_that_commits_late_with_a_lower_id_is_still_published() {
    let app = app_without_relay().await;
    let ctx = EventContext::new(Utc::now(), "late");
    let name = WalletName::parse("Late").expect("valid");
    let currency = "USD".parse().expect("ISO 4217");
    let (_, late_event) = Wallet::create(WalletId::new(), UserId::new(), name, currency, &ctx);
    let late_event = DomainEvent::from(late_event);

    let mut late = app.pool.begin().await.expect("begin");
    outbox::publish(&mut late, &late_event, &TraceHeaders::default(), None)
        .await
        .expect("insert");
    // A later transaction commits first and is published.
    app.create_wallet_for(app.fixture_user().await, "USD").await;
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the committed row to be published",
        || all_sent(&app),
    )
    .await;
    assert_eq!(rows(&app).await.len(), 1, "the late row is not visible yet");

    late.commit().await.expect("late commit");
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the late row, with the lower id, to be found by state and published",
        || all_sent(&app),
    )
    .await;
    let ids: Vec<(i64, Uuid, bool)> = sqlx::query_as(
        "SELECT o.id, o.event_id, p.id IS NULL FROM outbox o \
             LEFT JOIN outbox_pending p ON p.id = o.id ORDER BY o.id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(
        ids[0].1,
        late_event.metadata().event_id.as_uuid(),
        "the late row has the lower id"
    );
    assert!(ids.iter().all(|r| r.2));
    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 2).await;
    let ce_ids: Vec<Option<String>> = records.iter().map(|r| header(r, "ce_id")).collect();
    assert!(ce_ids.contains(&Some(late_event.metadata().event_id.to_string())));
}

#[tokio::test]
async fn a_second_relay_stands_by_while_the_first_holds_the_lock_and_takes_over_when_it_is_free() {
    let app = app_without_relay().await;
    app.create_wallet_for(app.fixture_user().await, "USD").await;
    let mut holder = app.pool.begin().await.expect("begin");
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(0x7761_6c6c_6574_i64)
        .fetch_one(&mut *holder)
        .await
        .expect("lock");
    assert!(locked);
    let running = Running::start(relay_polling(&app, &app.settings.kafka.brokers, 50));
    // The relay's own session ran its lock attempt and is idle: it stands by.
    eventually("the relay to try the lock", || relay_standing_by(&app)).await;
    assert_eq!(
        app.queued_rows().await,
        1,
        "nothing published without the lock"
    );
    holder.rollback().await.expect("release");
    eventually("the relay to take the lock and publish", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_row_that_keeps_failing_parks_its_wallet_waits_others_flow_and_redrive_releases_it_in_order()
 {
    let app = app_without_relay().await;
    let x = app.create_wallet_for(app.fixture_user().await, "USD").await;
    let x_id: Uuid = x["id"].as_str().expect("id").parse().expect("uuid");
    // What the row will be once fixed: a deposit to X (every published event must be valid
    // against its schema, which the test readers check).
    let fixed = wallet_hub_tests::deposit_event(x_id, 100);
    let poison_id = fixed.metadata().event_id.as_uuid();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, 'WalletExploded', $2, '{}', now())",
    )
    .bind(poison_id)
    .bind(x_id)
    .execute(&app.pool)
    .await
    .expect("insert poison row");
    assert_eq!(app.deposit(&x_id.to_string(), "1.00").await.status(), 201);

    run_relay_until(
        relay_polling(&app, &app.settings.kafka.brokers, 50),
        "the poison row to park",
        || async { (app.parked_rows().await > 0).then_some(()) },
    )
    .await;
    assert_eq!(app.parked_rows().await, 1);
    assert_eq!(
        rows(&app).await[1].2,
        3,
        "parks on its third failure (max_attempts = 3)"
    );

    // Another wallet's events flow; X's deposit is never attempted while X is parked.
    app.create_wallet_for(app.fixture_user().await, "EUR").await;
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the other wallet's event to be published",
        || async { rows(&app).await[3].1.then_some(()) },
    )
    .await;
    let after = rows(&app).await;
    let state: Vec<bool> = after.iter().map(|r| r.1).collect();
    assert_eq!(state, [true, false, false, true]);
    assert_eq!(after[2].2, 0, "X's deposit waits, unattempted");

    // The cause is fixed (here: the row gets a type the relay knows and a deposit's data) and an
    // operator redrives X: the parked row goes first, then the deposit that waited behind
    // it, on the same partition, in that order.
    sqlx::query("UPDATE outbox SET event_type = 'FundsAdded', payload = $2 WHERE event_id = $1")
        .bind(poison_id)
        .bind(fixed.to_json().expect("serializes"))
        .execute(&app.pool)
        .await
        .expect("fix the row");
    let released = outbox::ops::redrive(&app.pool, &outbox::ops::RedriveSelection::Key(x_id))
        .await
        .expect("redrive");
    assert_eq!(released, 1, "only the parked row is redriven");
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "X's two rows to be published",
        || all_sent(&app),
    )
    .await;
    let deposit_id: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM outbox WHERE aggregate_id = $1 AND event_type = 'FundsAdded' \
         AND event_id <> $2",
    )
    .bind(x_id)
    .bind(poison_id)
    .fetch_one(&app.pool)
    .await
    .expect("deposit row");
    let records = read_records(&app.settings.kafka.brokers, &app.topics.funds_added, 2).await;
    let ids: Vec<Option<String>> = records.iter().map(|r| header(r, "ce_id")).collect();
    assert_eq!(
        ids,
        [Some(poison_id.to_string()), Some(deposit_id.to_string())],
        "X's events in outbox order"
    );
    assert_eq!(records[0].partition(), records[1].partition());
    assert_eq!(app.queued_rows().await, 0);
}

#[tokio::test]
async fn operators_see_parked_rows_redrive_them_and_replay_exactly_the_selected_events() {
    let app = app_without_relay().await;
    let x = app.create_wallet_for(app.fixture_user().await, "USD").await;
    let x_id: Uuid = x["id"].as_str().expect("id").parse().expect("uuid");
    let y = app.create_wallet_for(app.fixture_user().await, "USD").await;
    assert_eq!(app.deposit(&x_id.to_string(), "2.00").await.status(), 201);
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, 'WalletExploded', $2, '{}', now())",
    )
    .bind(Uuid::now_v7())
    .bind(x_id)
    .execute(&app.pool)
    .await
    .expect("insert poison row");
    run_relay_until(
        relay_polling(&app, &app.settings.kafka.brokers, 50),
        "the poison row to park",
        || async { (app.parked_rows().await > 0).then_some(()) },
    )
    .await;

    let status = outbox::ops::status(&app.pool).await.expect("status");
    assert_eq!((status.pending, status.parked), (1, 1));
    let rates = outbox::ops::rates(&app.pool).await.expect("rates");
    let created = rates
        .iter()
        .find(|r| r.event_type == "WalletCreated")
        .expect("rate");
    assert_eq!(created.last_five_minutes, 2);
    let parked = outbox::ops::parked(&app.pool, 10).await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].aggregate_id, x_id);
    assert!(
        parked[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("WalletExploded"))
    );

    let other_key = outbox::ops::RedriveSelection::Key(Uuid::now_v7());
    assert_eq!(
        outbox::ops::redrive(&app.pool, &other_key)
            .await
            .expect("redrive"),
        0
    );
    let released = outbox::ops::redrive(&app.pool, &outbox::ops::RedriveSelection::Key(x_id))
        .await
        .expect("redrive");
    assert_eq!(released, 1);
    assert_eq!(
        outbox::ops::status(&app.pool).await.expect("status").parked,
        0
    );
    let after: (i32, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT p.attempts, p.parked_at FROM outbox_pending p JOIN outbox o ON o.id = p.id \
         WHERE o.event_type = 'WalletExploded'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("row");
    assert_eq!(after, (0, None), "attempts start again");

    // Replay X's events only: its creation and its deposit, with their original ids.
    let selection = outbox::ops::ReplaySelection {
        aggregate_id: Some(x_id),
        ..Default::default()
    };
    assert_eq!(
        outbox::ops::replay_count(&app.pool, &selection)
            .await
            .expect("count"),
        2
    );
    let bindings = EventBindings::new(&app.settings.bindings).expect("bindings");
    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    let mut progress = Vec::new();
    let replayed = outbox::ops::replay(&app.pool, &producer, &bindings, &selection, 1, |n| {
        progress.push(n)
    })
    .await
    .expect("replay");
    assert_eq!(replayed, 2);
    assert_eq!(progress, [1, 2]);
    let created = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 3).await;
    let subjects: Vec<Option<String>> = created.iter().map(|r| header(r, "ce_subject")).collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.as_deref() == Some(&x_id.to_string()))
            .count(),
        2
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.as_deref() == y["id"].as_str())
            .count(),
        1
    );
    let x_ids: Vec<Option<String>> = created
        .iter()
        .filter(|r| header(r, "ce_subject").as_deref() == Some(&x_id.to_string()))
        .map(|r| header(r, "ce_id"))
        .collect();
    assert_eq!(
        x_ids[0], x_ids[1],
        "the replay keeps the original CloudEvent id"
    );
    let added = read_records(&app.settings.kafka.brokers, &app.topics.funds_added, 2).await;
    assert_eq!(header(&added[0], "ce_id"), header(&added[1], "ce_id"));
}

#[tokio::test]
async fn three_relays_drain_a_mixed_backlog_in_order_per_wallet_even_when_the_leader_is_killed() {
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    const ROUNDS: u32 = 25;

    let app = app_without_relay().await;
    let user = app.fixture_user().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            app.create_wallet_for(user, "USD").await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for round in 1..=ROUNDS {
        for id in &ids {
            assert_eq!(app.deposit(id, &format!("{round}.00")).await.status(), 201);
        }
    }
    let total = app.queued_rows().await;
    assert_eq!(total, 8 + 8 * i64::from(ROUNDS));

    // Three relays, each with its own pool named after it (so the test can see which one
    // leads), small batches so the drain takes many rounds.
    let mut handles = Vec::new();
    for i in 0..3 {
        let options: sqlx::postgres::PgConnectOptions = app
            .settings
            .database
            .url
            .expose_secret()
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("url")
            .application_name(&format!("relay-{i}"));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("pool");
        let mut kafka = app.settings.kafka.clone();
        kafka.message_timeout_ms = 10_000;
        let relay = Relay::new(
            pool,
            kafka,
            EventBindings::new(&app.settings.bindings).expect("bindings"),
            RelayConfig {
                enabled: true,
                poll_interval_ms: 50,
                batch_size: 5,
                notify: false,
                max_attempts: 10,
                retry_base_ms: 10,
                retry_max_ms: 100,
                retention_hours: 168,
                retention_batch: 1000,
                vacuum_after_rows: 20,
                leader_timeout_ms: 10_000,
            },
        )
        .expect("producer");
        let shutdown = tokio_util::sync::CancellationToken::new();
        handles.push((tokio::spawn(relay.run(shutdown.clone())), shutdown));
    }
    // Once the leader has published part of the backlog, kill it (abort, not a graceful
    // stop): its session ends with it and PostgreSQL frees the lock.
    let leader = loop {
        let pending = app.queued_rows().await;
        if pending < total {
            let leader: Option<String> = sqlx::query_scalar(
                "SELECT a.application_name FROM pg_locks l \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
                     (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_optional(&app.pool)
            .await
            .expect("lock holder");
            if let Some(leader) = leader {
                assert!(pending > 0, "the kill must land mid-drain");
                break leader;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    let killed: usize = leader
        .strip_prefix("relay-")
        .and_then(|i| i.parse().ok())
        .expect("a relay leads");
    handles[killed].0.abort();

    eventually("the backlog drained by the survivors", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    for (i, (handle, shutdown)) in handles.into_iter().enumerate() {
        if i != killed {
            shutdown.cancel();
            handle.await.expect("relay stops");
        }
    }

    let records = wallet_hub_tests::read_all_records(
        &app.settings.kafka.brokers,
        &app.topics.funds_added,
        8 * usize::try_from(ROUNDS).expect("small"),
    )
    .await;
    let mut per_wallet: HashMap<String, Vec<(i32, i64, String)>> = HashMap::new();
    for record in &records {
        let body: serde_json::Value =
            serde_json::from_slice(record.payload().expect("payload")).expect("JSON");
        per_wallet
            .entry(body["wallet_id"].as_str().expect("wallet").to_owned())
            .or_default()
            .push((
                record.partition(),
                record.offset(),
                body["balance_after"]["value"]
                    .as_str()
                    .expect("balance")
                    .to_owned(),
            ));
    }
    assert_eq!(per_wallet.len(), 8);
    for (wallet, mut events) in per_wallet {
        assert!(
            events.windows(2).all(|w| w[0].0 == w[1].0),
            "one partition per wallet"
        );
        events.sort_by_key(|e| e.1);
        events.dedup_by(|a, b| a.2 == b.2); // a re-send after the kill is a duplicate, not a reorder
        let balances: Vec<f64> = events
            .iter()
            .map(|e| e.2.parse().expect("decimal"))
            .collect();
        assert_eq!(
            balances.len(),
            usize::try_from(ROUNDS).expect("small"),
            "{wallet}: every deposit published"
        );
        assert!(
            balances.windows(2).all(|w| w[0] < w[1]),
            "{wallet}: in order {balances:?}"
        );
    }
}

#[tokio::test]
async fn sent_rows_past_retention_are_deleted_in_bounded_batches_and_pending_rows_stay() {
    let app = app_without_relay().await;
    let user = app.fixture_user().await;
    for _ in 0..5 {
        app.create_wallet_for(user, "USD").await;
    }
    run_relay_until(
        relay(&app, &app.settings.kafka.brokers),
        "the five rows to be published",
        || all_sent(&app),
    )
    .await;
    assert_eq!(app.outbox_rows().await, 5);
    // Three published rows were written two hours ago, two just now; one more is still
    // pending.
    sqlx::query("UPDATE outbox SET created_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 3)")
        .execute(&app.pool)
        .await
        .expect("age rows");
    app.create_wallet_for(user, "USD").await;
    sqlx::query("UPDATE outbox SET created_at = now() - interval '3 hours' WHERE id IN (SELECT id FROM outbox_pending)")
        .execute(&app.pool)
        .await
        .expect("age pending row");

    let first = outbox::store::delete_sent_before(&app.pool, 1, 2)
        .await
        .expect("delete");
    let second = outbox::store::delete_sent_before(&app.pool, 1, 2)
        .await
        .expect("delete");
    let third = outbox::store::delete_sent_before(&app.pool, 1, 2)
        .await
        .expect("delete");
    assert_eq!((first, second, third), (2, 1, 0), "bounded batches");
    let left: Vec<bool> = sqlx::query_scalar(
        "SELECT p.id IS NULL FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id ORDER BY o.id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(
        left,
        [true, true, false],
        "recent sent rows and the pending row stay"
    );
}

#[tokio::test]
async fn expired_idempotency_keys_are_deleted_in_bounded_batches() {
    let app = app_without_relay().await;
    let id = app.create_wallet_for(app.fixture_user().await, "USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for key in ["a", "b", "c"] {
        let response = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/wallets/{id}/deposits"),
                Some(&serde_json::json!({"amount": "1.00"})),
            )
            .await
            .header("idempotency-key", key)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201);
    }
    sqlx::query(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key <> 'c'",
    )
    .execute(&app.pool)
    .await
    .expect("expire");
    let mut conn = app.pool.acquire().await.expect("connection");
    assert_eq!(
        store::idempotency::delete_expired(&mut conn, 1)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        store::idempotency::delete_expired(&mut conn, 10)
            .await
            .expect("delete"),
        1
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys")
        .fetch_all(&app.pool)
        .await
        .expect("keys");
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn the_fetch_reads_the_oldest_publishable_rows_in_order_leaving_out_rows_in_flight_and_blocked_keys()
 {
    let app = app_without_relay().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut conn = app.pool.acquire().await.expect("connection");
    let mut event_ids = Vec::new();
    for (wallet, minor) in [(a, 1), (b, 2), (a, 3), (b, 4), (a, 5), (b, 6)] {
        let event = wallet_hub_tests::deposit_event(wallet, minor);
        event_ids.push(event.metadata().event_id.as_uuid());
        outbox::publish(&mut conn, &event, &TraceHeaders::default(), None)
            .await
            .expect("insert");
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    let fetched =
        |rows: &[outbox::store::PendingRow]| rows.iter().map(|r| r.id).collect::<Vec<_>>();

    let first = outbox::store::fetch_pending(&mut conn, 3, &[])
        .await
        .expect("fetch");
    assert_eq!(fetched(&first), ids[..3]);
    assert_eq!(first[0].event_id, event_ids[0]);
    assert_eq!(first[0].aggregate_id, a);
    let payload: serde_json::Value = serde_json::from_str(&first[0].payload).expect("JSON text");
    assert_eq!(payload["event_id"], event_ids[0].to_string());

    let ahead = outbox::store::fetch_pending(&mut conn, 10, &ids[..3])
        .await
        .expect("fetch");
    assert_eq!(fetched(&ahead), ids[3..], "rows in flight are left out");

    // A's first row backs off, then parks: A's later rows wait behind it, B's flow.
    for blocked in [
        "UPDATE outbox_pending SET next_attempt_at = now() + interval '1 hour' WHERE id = $1",
        "UPDATE outbox_pending SET next_attempt_at = NULL, parked_at = now() WHERE id = $1",
    ] {
        sqlx::query(blocked)
            .bind(ids[0])
            .execute(&app.pool)
            .await
            .expect("block A");
        let rows = outbox::store::fetch_pending(&mut conn, 10, &[])
            .await
            .expect("fetch");
        assert_eq!(fetched(&rows), vec![ids[1], ids[3], ids[5]], "{blocked}");
    }
}

#[tokio::test]
async fn a_commit_through_the_api_wakes_the_relay_long_before_its_poll() {
    let app = spawn_app_with(|settings| {
        settings.relay.poll_interval_ms = 600_000;
        settings.relay.notify = true;
        settings.consumer.enabled = false;
    })
    .await;
    // The relay's first poll runs at start; after that only a wake-up can move rows.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let wallet = app.create_wallet_for(app.fixture_user().await, "USD").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
            .fetch_one(&app.pool)
            .await
            .expect("count");
        if queued == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queued} rows still queued: the commits did not wake the relay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 1).await;
    assert_eq!(
        header(&records[0], "ce_subject"),
        wallet["id"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn the_commit_waker_notifies_the_relay_channel_and_folds_wake_ups() {
    let app = app_without_relay().await;
    let mut listener = outbox_listener(&app).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let waker = outbox::CommitWaker::spawn(
        app.pool.connect_options().as_ref().clone(),
        shutdown.clone(),
    );
    for _ in 0..100 {
        waker.wake();
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .expect("notification");
    assert_eq!(first.channel(), outbox::OUTBOX_CHANNEL);
    // A hundred wake-ups while the first NOTIFY was on its way: at most one more follows.
    let mut more = 0;
    while let Ok(next) =
        tokio::time::timeout(std::time::Duration::from_millis(500), listener.recv()).await
    {
        next.expect("notification");
        more += 1;
    }
    assert!(more <= 1, "{more} notifications after the first");
    shutdown.cancel();
}

#[tokio::test]
async fn the_relay_session_tells_the_server_to_drop_it_when_its_client_goes_silent() {
    use sqlx::Connection as _;
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let mut conn = sqlx::PgConnection::connect_with(&app.pool.connect_options())
        .await
        .expect("a TCP session");
    outbox::store::prepare_relay_session(&mut conn, std::time::Duration::from_secs(10))
        .await
        .expect("prepared");
    let show = |name: &'static str| format!("SHOW {name}");
    let mut settings = Vec::new();
    for name in [
        "synchronous_commit",
        "tcp_keepalives_idle",
        "tcp_keepalives_interval",
        "tcp_keepalives_count",
        "tcp_user_timeout",
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(show(name)))
            .fetch_one(&mut conn)
            .await
            .expect("SHOW");
        settings.push(value);
    }
    // Probes after 5 s, then four a second apart: a silent client is dropped within ~10 s.
    assert_eq!(settings, ["off", "5", "1", "4", "10000"]);
}

/// A relay of `app`'s outbox that polls every ten minutes and listens for `NOTIFY`s: after
/// its first round, at start, only a wake-up moves rows.
fn relay_listening(app: &TestApp) -> Relay {
    let config = RelayConfig {
        notify: true,
        ..relay_config(600_000)
    };
    relay_with(app, &app.settings.kafka.brokers, config)
}

/// Commits one outbox row (a wallet's creation), as a writer does, without waking anyone.
async fn commit_a_row(app: &TestApp) {
    let ctx = EventContext::new(Utc::now(), "wake");
    let name = WalletName::parse("Wake").expect("valid");
    let currency = "USD".parse().expect("ISO 4217");
    let (_, event) = Wallet::create(WalletId::new(), UserId::new(), name, currency, &ctx);
    let mut tx = app.pool.begin().await.expect("begin");
    outbox::publish(
        &mut tx,
        &DomainEvent::from(event),
        &TraceHeaders::default(),
        None,
    )
    .await
    .expect("insert");
    tx.commit().await.expect("commit");
}

/// A session listening on the outbox channel, as relays do.
async fn outbox_listener(app: &TestApp) -> sqlx::postgres::PgListener {
    let mut listener = sqlx::postgres::PgListener::connect_with(&app.pool)
        .await
        .expect("listener");
    listener
        .listen(outbox::OUTBOX_CHANNEL)
        .await
        .expect("listen");
    listener
}

/// The next `NOTIFY` on the outbox channel within `wait`, if any.
async fn next_notify(
    listener: &mut sqlx::postgres::PgListener,
    wait: std::time::Duration,
) -> Option<sqlx::postgres::PgNotification> {
    tokio::time::timeout(wait, listener.recv())
        .await
        .ok()
        .map(|notification| notification.expect("notification"))
}

#[tokio::test]
async fn a_leading_relay_is_woken_by_its_own_process_without_a_notify_and_a_standby_or_stopped_one_notifies()
 {
    let app = app_without_relay().await;
    let mut listener = outbox_listener(&app).await;
    let shutdown = CancellationToken::new();
    let connect = app.pool.connect_options().as_ref().clone();

    // Relay A takes the lock at its start and publishes the row waiting there.
    commit_a_row(&app).await;
    let a = relay_listening(&app);
    let wakes_a =
        outbox::CommitWaker::spawn(connect.clone(), shutdown.clone()).with_local(a.local_wake());
    let a = Running::start(a);
    eventually("relay A to lead and publish the first row", || {
        all_sent(&app)
    })
    .await;

    // Leading: a commit in A's process wakes A directly. Its poll is ten minutes away and
    // no NOTIFY goes out, so only the direct wake-up can have published the row.
    commit_a_row(&app).await;
    wakes_a.wake();
    eventually("the leader, woken directly, to publish the row", || {
        all_sent(&app)
    })
    .await;
    assert!(
        next_notify(&mut listener, std::time::Duration::from_secs(1))
            .await
            .is_none(),
        "a commit beside the leading relay sent a NOTIFY"
    );

    // Standing by: relay B's process tells the leader elsewhere, through a NOTIFY, and A
    // (listening) publishes the row.
    let b = relay_listening(&app);
    let wakes_b = outbox::CommitWaker::spawn(connect, shutdown.clone()).with_local(b.local_wake());
    let b = Running::start(b);
    eventually("relay B to find the lock taken and stand by", || {
        relay_standing_by(&app)
    })
    .await;
    commit_a_row(&app).await;
    wakes_b.wake();
    let notified = next_notify(&mut listener, std::time::Duration::from_secs(10)).await;
    assert_eq!(
        notified
            .as_ref()
            .map(sqlx::postgres::PgNotification::channel),
        Some(outbox::OUTBOX_CHANNEL),
        "a commit beside a standby sends a NOTIFY"
    );
    eventually("the leader, notified, to publish the row", || {
        all_sent(&app)
    })
    .await;

    // Stopped: A no longer leads, so its process's commits notify again.
    a.stop().await;
    wakes_a.wake();
    assert!(
        next_notify(&mut listener, std::time::Duration::from_secs(10))
            .await
            .is_some(),
        "a commit beside a stopped relay sends a NOTIFY"
    );
    b.stop().await;
    shutdown.cancel();
}
