//! Crashes at the worst moments, with real process aborts: the test re-runs its own binary
//! as a child with a failpoint armed, the child aborts, and a fresh service must neither
//! lose nor double anything. Its own binary, because it owns the processes it starts.
//!
//! The failpoints are the `fail` crate's, compiled into this binary only (its dev-dependencies
//! turn on the `failpoints` features) and armed in the child through `FAILPOINTS`, which
//! `fail::FailScenario::setup()` reads: `<name>=return` aborts at a crash point,
//! `<name>=1*return` fails a fault point once.

use std::process::Command;

use secrecy::ExposeSecret;
use wallet_hub_tests::{eventually, read_records, start, test_settings};

const CHILD: &str = "WALLET_HUB_TEST_CHILD";

/// In the child: run the service from the environment until the failpoint aborts it.
async fn run_child() {
    let _failpoints = fail::FailScenario::setup();
    let mut settings = wallet_hub::Settings::load(None).expect("settings");
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.admin.listen = "127.0.0.1:0".parse().expect("address");
    let app = wallet_hub::Application::build(settings, &[])
        .await
        .expect("app");
    let _ = app
        .run_until_stopped(tokio_util::sync::CancellationToken::new())
        .await;
}

/// Runs `test` of this binary as a child process with `failpoint` armed and `settings`
/// in its environment; returns once it died.
fn crash_child(test: &str, failpoint: &str, settings: &wallet_hub::Settings) {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("FAILPOINTS", format!("{failpoint}=return"))
        .env("DATABASE_URL", settings.database.url.expose_secret())
        .env(
            "DATABASE_MIGRATE_URL",
            settings.database.migrate_url.expose_secret(),
        )
        .env("KAFKA_BROKERS", &settings.kafka.brokers)
        .env(
            "WALLET_HUB__CONSUMER__GROUP_ID",
            &settings.consumer.group_id,
        )
        .env("WALLET_HUB__KAFKA__MESSAGE_TIMEOUT_MS", "10000");
    for (binding, topic) in &settings.bindings {
        command.env(
            format!("WALLET_HUB__BINDINGS__{}", binding.to_lowercase()),
            topic,
        );
    }
    let status = command.status().expect("child runs");
    assert!(
        !status.success(),
        "the child must die at the failpoint: {status}"
    );
}

#[tokio::test]
async fn a_consumer_that_dies_between_its_commit_and_its_offset_commit_redelivers_as_a_no_op() {
    if std::env::var(CHILD).is_ok() {
        return run_child().await;
    }
    let (settings, topics) = test_settings().await;
    // The parent writes the event (API and relay), with consumers off.
    let writer = start(
        {
            let mut s = settings.clone();
            s.consumer.enabled = false;
            s
        },
        topics.clone(),
    )
    .await;
    let user = writer.create_user().await;
    let wallet = writer.create_wallet_for(user, "USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    read_records(&settings.kafka.brokers, &topics.wallet_created, 1).await;
    writer.stop().await.expect("stop");

    crash_child(
        "a_consumer_that_dies_between_its_commit_and_its_offset_commit_redelivers_as_a_no_op",
        kafka::failpoint::CONSUMER_AFTER_EFFECT,
        &settings,
    );

    let app = start(settings, topics).await;
    let pool = app.pool.clone();
    let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        notifications, 1,
        "the child committed the effect before dying"
    );
    eventually(
        "the redelivered message to be skipped as a duplicate",
        || async {
            let text = app.admin_get("/metrics").await.text().await.ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with("events_consumed_total{")
                        && l.contains(&app.topics.wallet_created)
                        && l.contains("outcome=\"duplicate\"")
                })
                .then_some(())
        },
    )
    .await;
    let list: Vec<serde_json::Value> = app.list(&format!("/v1/users/{user}/notifications")).await;
    assert_eq!(list.len(), 1, "one welcome for wallet {wallet}");
}

#[tokio::test]
async fn a_relay_that_dies_between_produce_and_mark_sent_republishes_with_the_same_id() {
    if std::env::var(CHILD).is_ok() {
        return run_child().await;
    }
    let (settings, topics) = test_settings().await;
    let writer = start(
        {
            let mut s = settings.clone();
            s.relay.enabled = false;
            s.consumer.enabled = false;
            s
        },
        topics.clone(),
    )
    .await;
    let user = writer.fixture_user().await;
    writer.create_wallet_for(user, "USD").await;
    writer.stop().await.expect("stop");

    crash_child(
        "a_relay_that_dies_between_produce_and_mark_sent_republishes_with_the_same_id",
        kafka::failpoint::RELAY_AFTER_PRODUCE,
        &settings,
    );
    let first = read_records(&settings.kafka.brokers, &topics.wallet_created, 1).await;
    let app = start(settings, topics).await;
    eventually("the row to be marked sent", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    let both = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 2).await;
    let id = wallet_hub_tests::header(&first[0], "ce_id");
    assert!(id.is_some());
    assert!(
        both.iter()
            .all(|r| wallet_hub_tests::header(r, "ce_id") == id),
        "published again, same id"
    );
}

#[tokio::test]
async fn a_producer_that_hits_a_fatal_error_is_recreated_and_the_event_still_goes_out() {
    if std::env::var(CHILD).is_err() {
        // The whole scenario runs in a child: the fault point fires once per process.
        let status = Command::new(std::env::current_exe().expect("own path"))
            .args([
                "--exact",
                "a_producer_that_hits_a_fatal_error_is_recreated_and_the_event_still_goes_out",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env(
                "FAILPOINTS",
                format!("{}=1*return", kafka::failpoint::PRODUCER_FATAL),
            )
            .status()
            .expect("child runs");
        assert!(status.success(), "the child's checks failed: {status}");
        return;
    }
    let _failpoints = fail::FailScenario::setup();
    let (mut settings, topics) = test_settings().await;
    settings.consumer.enabled = false;
    let app = start(settings, topics).await;
    let user = app.fixture_user().await;
    app.create_wallet_for(user, "USD").await;

    // The first enqueue fails as librdkafka's fatal error; the relay replaces the producer
    // and the row, retried after its back-off, goes out with the new one.
    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 1).await;
    assert_eq!(records.len(), 1);
    eventually("the row to leave the queue", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    let text = app.admin_get("/metrics").await.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l == "kafka_producer_recreated_total{reason=\"fatal\"} 1"),
        "one producer replaced:\n{text}"
    );
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(attempts, 1, "one event, published once it could be");
}
