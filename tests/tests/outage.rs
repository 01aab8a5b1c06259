//! Outages of the real servers: this binary stops and restarts the PostgreSQL and Kafka
//! that `scripts/test` runs, so its tests run one at a time (a lock) and cargo runs it
//! apart from the other test binaries.

use std::process::Command;
use std::time::Duration;

use wallet_hub_tests::{eventually, read_records, spawn_app_with};

/// One outage at a time.
static SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn script(name: &str, action: &str) {
    let path = format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(&path)
        .arg(action)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    assert!(status.success(), "{path} {action} failed");
}

async fn readiness(app: &wallet_hub_tests::TestApp) -> (u16, serde_json::Value) {
    let response = app.admin_get("/health/ready").await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn check_status<'a>(body: &'a serde_json::Value, name: &str) -> &'a str {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
}

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn readiness_names_postgres_while_it_is_down_and_recovers_after() {
    let _servers = SERVERS.lock().await;
    let app = spawn_app_with(|s| s.health.check_timeout_ms = 1_000).await;
    assert_eq!(readiness(&app).await.0, 200);

    script("postgres", "stop");
    let body = eventually("readiness to fail", || async {
        let (status, body) = readiness(&app).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(check_status(&body, "database"), "down", "{body}");
    assert_eq!(
        app.admin_get("/health/live").await.status(),
        200,
        "still alive"
    );

    script("postgres", "start");
    eventually("readiness to recover", || async {
        (readiness(&app).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn while_the_broker_is_down_the_api_answers_the_backlog_grows_and_drains_after() {
    let _servers = SERVERS.lock().await;
    let app = spawn_app_with(|s| {
        s.health.check_timeout_ms = 1_000;
        s.kafka.message_timeout_ms = 3_000;
        s.relay.poll_interval_ms = 500;
    })
    .await;
    assert_eq!(readiness(&app).await.0, 200);

    script("kafka-broker", "stop");
    let mut wallets = Vec::new();
    for _ in 0..5 {
        wallets.push(
            app.create_wallet("USD").await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let body = eventually("readiness to name Kafka", || async {
        let (status, body) = readiness(&app).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(check_status(&body, "kafka"), "down", "{body}");
    eventually("outbox_queue_size to show the backlog", || async {
        let text = app.admin_get("/metrics").await.text().await.expect("text");
        (gauge(&text, "outbox_queue_size")? >= 5.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o \
         WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(sent, 0, "nothing is marked sent without a delivery report");

    script("kafka-broker", "start");
    eventually("the backlog to drain", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    eventually("outbox_queue_size to fall", || async {
        let text = app.admin_get("/metrics").await.text().await.expect("text");
        (gauge(&text, "outbox_queue_size")? == 0.0).then_some(())
    })
    .await;
    eventually("readiness to recover", || async {
        (readiness(&app).await.0 == 200).then_some(())
    })
    .await;
    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 5).await;
    for wallet in &wallets {
        assert!(
            records
                .iter()
                .any(|r| wallet_hub_tests::header(r, "ce_subject").as_deref() == Some(wallet)),
            "wallet {wallet} published after the outage"
        );
    }
}

#[tokio::test]
async fn while_postgres_is_down_consumers_retry_and_apply_everything_once_after() {
    let _servers = SERVERS.lock().await;
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.database.acquire_timeout_ms = 1_000;
    })
    .await;
    let wallet_id = uuid::Uuid::now_v7();
    let events: Vec<_> = (1..=3)
        .map(|i| wallet_hub_tests::deposit_event(wallet_id, 100 * i))
        .collect();

    script("postgres", "stop");
    let producer = kafka::EventProducer::new(&app.settings.kafka).expect("producer");
    for event in &events {
        let ce = wallet_hub_tests::cloud_event(event);
        producer
            .send(
                &app.topics.funds_added,
                &wallet_id.to_string(),
                ce,
                &telemetry::TraceHeaders::default(),
            )
            .expect("enqueued")
            .await
            .expect("delivered");
    }
    let metric = |text: &str, outcome: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("events_consumed_total{") && l.contains(&app.topics.funds_added)
            })
            .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    eventually("the consumer to retry", || async {
        let text = app.admin_get("/metrics").await.text().await.ok()?;
        (metric(&text, "retried") > 0.0).then_some(())
    })
    .await;
    let body = eventually("readiness to show the consumer paused", || async {
        let (_, body) = readiness(&app).await;
        body["checks"]
            .as_array()?
            .iter()
            .any(|c| {
                c["name"] == "consumer"
                    && c["status"] == "down"
                    && c["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("paused since"))
            })
            .then_some(body)
    })
    .await;
    let text = app.admin_get("/metrics").await.text().await.expect("text");
    assert!(
        text.lines().any(|l| l.starts_with("consumer_state{")
            && l.contains("state=\"paused\"")
            && l.ends_with(" 1")),
        "consumer_state shows the pause: {body}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    script("postgres", "start");

    let activity = eventually("all three applied", || async {
        let mut conn = app.pool.acquire().await.ok()?;
        let found = store::activity::find(&mut conn, domain::WalletId::from(wallet_id))
            .await
            .ok()??;
        (found.events_applied == 3).then_some(found)
    })
    .await;
    assert_eq!(activity.total_in_minor, 600, "each once");
    let text = app.admin_get("/metrics").await.text().await.expect("text");
    assert_eq!(metric(&text, "dead_lettered"), 0.0, "nothing dead-lettered");
    let (_, body) = readiness(&app).await;
    assert_eq!(
        check_status(&body, "consumer"),
        "up",
        "resumed by itself: {body}"
    );
    assert_eq!(metric(&text, "ok"), 3.0);
}
