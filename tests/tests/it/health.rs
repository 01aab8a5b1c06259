//! Readiness checks that each fail when their condition fails (a missing topic, an
//! exhausted pool, an outbox row older than the limit), the topics the service provisions
//! itself, and the consumer groups' lag read from committed offsets while no consumer runs.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use wallet_hub_tests::{TestApp, eventually, spawn_app_with};

/// `(status, detail)` of the readiness check `name`, and the HTTP status.
async fn readiness_check(app: &TestApp, name: &str) -> (u16, String, String) {
    let response = app.admin_get("/health/ready").await;
    let code = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("JSON");
    let check = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
        .clone();
    (
        code,
        check["status"].as_str().expect("status").to_owned(),
        check["detail"].as_str().expect("detail").to_owned(),
    )
}

#[tokio::test]
async fn the_service_creates_its_dead_letter_topics_and_readiness_names_a_missing_topic() {
    let app = spawn_app_with(|_| {}).await;
    let dlq = format!("{}.dlq", app.topics.funds_added);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("client");
    let metadata = consumer
        .fetch_metadata(Some(&dlq), Duration::from_secs(10))
        .expect("metadata");
    assert!(
        metadata.topics()[0].error().is_none() && !metadata.topics()[0].partitions().is_empty(),
        "{dlq} was provisioned at startup"
    );
    let (code, status, _) = readiness_check(&app, "topics").await;
    assert_eq!((code, status.as_str()), (200, "up"));

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("admin");
    admin
        .delete_topics(&[&dlq], &AdminOptions::new())
        .await
        .expect("delete request")
        .into_iter()
        .for_each(|result| {
            result.expect("topic deleted");
        });
    let detail = eventually("readiness to name the missing topic", || async {
        let (code, status, detail) = readiness_check(&app, "topics").await;
        (code == 503 && status == "down").then_some(detail)
    })
    .await;
    assert!(detail.contains(&dlq), "{detail}");
    assert!(detail.contains("does not exist"), "{detail}");
}

#[tokio::test]
async fn readiness_reports_the_pool_exhausted_while_every_connection_is_held() {
    let app = spawn_app_with(|s| {
        s.database.api_max_connections = 2;
        s.database.lock_timeout_ms = 0;
        s.database.statement_timeout_ms = 0;
        s.api.request_timeout_ms = 120_000;
        // With the batching writer, two batches in flight hold the two connections.
        s.api.write_batch_writers = std::num::NonZeroUsize::new(2).expect("non-zero");
    })
    .await;
    let wallet = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Both API connections wait on a lock the test holds.
    let mut lock = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE id = $1::uuid FOR UPDATE")
        .bind(&wallet)
        .execute(&mut *lock)
        .await
        .expect("lock the wallet");
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let request = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/wallets/{wallet}/deposits"),
                Some(&serde_json::json!({"amount": "1.00"})),
            )
            .await;
        stuck.push(tokio::spawn(request.send()));
        // Apart, so that the batching writer runs them as two batches (two connections),
        // not as one.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let detail = eventually("readiness to report the pool exhausted", || async {
        let (code, status, detail) = readiness_check(&app, "database_pool").await;
        (code == 503 && status == "down").then_some(detail)
    })
    .await;
    assert!(detail.starts_with("exhausted"), "{detail}");
    lock.rollback().await.expect("release");
    for request in stuck {
        let response = request.await.expect("joined").expect("answered");
        assert_eq!(response.status(), 201);
    }
    // A connection goes back to the pool asynchronously, just after its answer.
    eventually("readiness to report the pool up again", || async {
        let (code, status, _) = readiness_check(&app, "database_pool").await;
        (code == 200 && status == "up").then_some(())
    })
    .await;
}

#[tokio::test]
async fn readiness_reports_the_outbox_down_once_a_row_waits_longer_than_the_limit() {
    let app = spawn_app_with(|s| {
        s.health.outbox_max_pending_age_seconds = 1;
        s.relay.max_attempts = 1;
    })
    .await;
    let (_, status, _) = readiness_check(&app, "outbox").await;
    assert_eq!(status, "up");
    // A row no relay can publish (unknown type) parks and stays queued.
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES (gen_random_uuid(), 'WalletExploded', gen_random_uuid(), '{}', now())",
    )
    .execute(&app.pool)
    .await
    .expect("insert");
    let detail = eventually("the outbox check to fail", || async {
        let (code, status, detail) = readiness_check(&app, "outbox").await;
        (code == 503 && status == "down").then_some(detail)
    })
    .await;
    assert!(detail.contains("limit 1 s"), "{detail}");
    let (_, relay, _) = readiness_check(&app, "relay").await;
    assert_eq!(
        relay, "up",
        "a bad row is not an outage: the circuit stays closed"
    );
}

/// The `consumer_group_lag` sample of `group` on `topic`, summed over partitions.
fn group_lag(metrics: &str, group: &str, topic: &str) -> Option<f64> {
    let mut found = false;
    let sum = metrics
        .lines()
        .filter(|l| l.starts_with("consumer_group_lag{"))
        .filter(|l| l.contains(&format!("group=\"{group}\"")))
        .filter(|l| l.contains(&format!("topic=\"{topic}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .inspect(|_| found = true)
        .sum();
    found.then_some(sum)
}

/// The activity consumer's group and the topic of deposits it reads.
fn activity_group(app: &TestApp) -> (String, String) {
    (
        format!("{}-activity", app.settings.consumer.group_id),
        app.topics.funds_added.clone(),
    )
}

/// A new USD wallet with `deposits` deposits of 1.00; its id.
async fn wallet_with_deposits(app: &TestApp, deposits: usize) -> String {
    let wallet = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for _ in 0..deposits {
        assert_eq!(app.deposit(&wallet, "1.00").await.status(), 201);
    }
    wallet
}

#[tokio::test]
async fn group_lag_is_reported_and_grows_while_no_consumer_of_the_group_runs() {
    let app = spawn_app_with(|s| s.consumer.enabled = false).await;
    let (group, topic) = activity_group(&app);
    let wallet = wallet_with_deposits(&app, 3).await;
    let first = eventually("the lag of 3 deposits", || async {
        let text = app.admin_get("/metrics").await.text().await.ok()?;
        group_lag(&text, &group, &topic).filter(|lag| *lag >= 3.0)
    })
    .await;
    for _ in 0..4 {
        assert_eq!(app.deposit(&wallet, "1.00").await.status(), 201);
    }
    let grown = eventually("the lag to grow", || async {
        let text = app.admin_get("/metrics").await.text().await.ok()?;
        group_lag(&text, &group, &topic).filter(|lag| *lag >= first + 4.0)
    })
    .await;
    assert!(grown >= 7.0, "{grown}");
}

#[tokio::test]
async fn a_group_commits_what_it_applied_at_once_so_its_lag_is_only_the_work_left() {
    // Auto-commit every 10 minutes: only the commit after each poll can move the offsets.
    let app = spawn_app_with(|s| {
        s.kafka
            .consumer
            .insert("auto.commit.interval.ms".to_owned(), "600000".to_owned());
    })
    .await;
    let (group, topic) = activity_group(&app);
    let wallet = wallet_with_deposits(&app, 5).await;
    eventually("the 5 deposits applied", || async {
        let body: serde_json::Value = app
            .get(&format!("/v1/wallets/{wallet}/activity"))
            .await
            .json()
            .await
            .ok()?;
        (body["events_applied"] == 5).then_some(())
    })
    .await;
    let reader = kafka::LagReader::new(
        &app.settings.kafka,
        vec![kafka::GroupTopics {
            group: group.clone(),
            topics: vec![topic.clone()],
        }],
    )
    .expect("lag reader");
    // Well within the 10 minutes: committed after the poll that applied them.
    eventually("the group's committed offsets at the end", || async {
        let lags = reader.read(Duration::from_secs(5)).await.ok()?;
        (!lags.is_empty() && lags.iter().all(|p| p.lag == 0)).then_some(())
    })
    .await;
}
