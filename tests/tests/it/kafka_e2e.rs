//! The walking skeleton end to end: HTTP -> PostgreSQL + outbox -> relay -> Kafka ->
//! consumer -> welcome notification.

use domain::UserId;
use rdkafka::Message;
use wallet_hub_client::{Amount, CreateWallet, PageRequest};

use wallet_hub_tests::{eventually, header, read_records, spawn_app};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn trace_id_of(traceparent: &str) -> &str {
    traceparent
        .split('-')
        .nth(1)
        .expect("traceparent has a trace id")
}

#[tokio::test]
async fn wallet_and_deposit_events_reach_kafka_as_cloud_events_with_the_request_trace() {
    let app = spawn_app().await;
    let user_id = app.create_user().await;

    let owner = app.as_user(user_id).await.with_traceparent(TRACEPARENT);
    let wallet = CreateWallet {
        name: "Groceries".to_owned(),
        currency: "USD".parse().expect("currency"),
    };
    let created = owner
        .with_correlation_id("corr-e2e-1")
        .create_wallet(&wallet, None)
        .await
        .expect("wallet created");
    assert_eq!(created.status, 201);
    assert_eq!(created.correlation_id.as_deref(), Some("corr-e2e-1"));
    let wallet_id = created.body.id.to_string();

    let deposit = app
        .operator()
        .with_traceparent(TRACEPARENT)
        .deposit(created.body.id, &Amount::new("10.50"), None)
        .await
        .expect("deposit");
    assert_eq!(deposit.status, 201);
    assert!(deposit.correlation_id.is_some(), "the server made one up");

    let brokers = &app.settings.kafka.brokers;
    let created_records = read_records(brokers, &app.topics.wallet_created, 1).await;
    let added_records = read_records(brokers, &app.topics.funds_added, 1).await;

    let payloads: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM outbox WHERE event_type <> 'UserCreated' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows");
    assert_eq!(payloads.len(), 2);

    for (record, (event_type, payload), ce_type) in [
        (
            &created_records[0],
            &payloads[0],
            "io.wallethub.wallet.created.v1",
        ),
        (
            &added_records[0],
            &payloads[1],
            "io.wallethub.funds.added.v1",
        ),
    ] {
        let key = record
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(
            key.as_deref(),
            Some(wallet_id.as_str()),
            "{event_type}: key is the wallet id"
        );
        assert_eq!(header(record, "ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(
            header(record, "ce_id").as_deref(),
            payload["event_id"].as_str()
        );
        assert_eq!(header(record, "ce_type").as_deref(), Some(ce_type));
        assert_eq!(header(record, "ce_source").as_deref(), Some("/wallet-hub"));
        assert_eq!(
            header(record, "ce_subject").as_deref(),
            Some(wallet_id.as_str())
        );
        let ce_time = header(record, "ce_time").expect("ce_time");
        let ce_time = chrono::DateTime::parse_from_rfc3339(&ce_time).expect("RFC 3339 time");
        let occurred = chrono::DateTime::parse_from_rfc3339(
            payload["occurred_at"].as_str().expect("occurred_at"),
        )
        .expect("RFC 3339 occurred_at");
        assert_eq!(ce_time, occurred);
        assert_eq!(
            header(record, "content-type").as_deref(),
            Some("application/json")
        );

        let body: serde_json::Value =
            serde_json::from_slice(record.payload().expect("payload")).expect("JSON body");
        assert_eq!(&body, payload, "{event_type}: body is the event");

        let traceparent = header(record, "traceparent").expect("traceparent header");
        assert_eq!(
            trace_id_of(&traceparent),
            TRACE_ID,
            "continues the request's trace"
        );
        let ce_traceparent = header(record, "ce_traceparent").expect("ce_traceparent");
        assert_eq!(trace_id_of(&ce_traceparent), TRACE_ID);
    }
    assert_eq!(payloads[0].1["correlation_id"], "corr-e2e-1");
    // Each event names who acted: the owner opened the wallet, the operator deposited.
    let owner_subject: String = sqlx::query_scalar("SELECT subject FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&app.pool)
        .await
        .expect("the owner's subject");
    let issuer = app.settings.auth.issuer.as_str();
    assert_eq!(
        payloads[0].1["actor"],
        serde_json::json!({"issuer": issuer, "subject": owner_subject})
    );
    assert_eq!(
        payloads[1].1["actor"],
        serde_json::json!({"issuer": issuer, "subject": "test-operator"})
    );
    assert_eq!(
        payloads[1].1["amount"],
        serde_json::json!({"value": "10.50", "currency": "USD"})
    );
    assert_eq!(payloads[1].1["balance_after"]["value"], "10.50");

    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(unsent, 0, "both outbox rows are marked sent");

    let notifications = eventually("the welcome notification", || async {
        let list = owner
            .list_notifications(UserId::from(user_id), &PageRequest::default())
            .await
            .expect("notifications")
            .body
            .items;
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].wallet_id, created.body.id);
    assert_eq!(notifications[0].kind, "welcome");
    assert_eq!(
        serde_json::json!(notifications[0].event_id),
        payloads[0].1["event_id"]
    );

    app.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_new_trace_that_the_event_carries() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/v1/wallets",
            &serde_json::json!({"user_id": app.create_user().await, "name": "Fresh", "currency": "EUR"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let correlation = response.headers()["x-correlation-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(!correlation.is_empty(), "a correlation id is generated");

    let stored: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT traceparent, correlation_id FROM outbox WHERE event_type = 'WalletCreated'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("outbox row");
    let stored_traceparent = stored.0.expect("a trace was started");
    assert_eq!(stored.1.as_deref(), Some(correlation.as_str()));

    let records = read_records(&app.settings.kafka.brokers, &app.topics.wallet_created, 1).await;
    let traceparent = header(&records[0], "traceparent").expect("traceparent header");
    assert_eq!(trace_id_of(&traceparent), trace_id_of(&stored_traceparent));
    assert_ne!(
        trace_id_of(&traceparent),
        "00000000000000000000000000000000"
    );
}

#[tokio::test]
async fn every_event_type_reaches_its_topic_as_a_cloud_event_keyed_to_keep_order() {
    let app = spawn_app().await;
    let (user, a, b) = app.money_scenario().await;
    let freeze = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/wallets/{b}/freeze"),
            None,
        )
        .await
        .send()
        .await
        .expect("request sent");
    assert_eq!(freeze.status(), 200);

    let user_id = user.to_string();
    let expectations = [
        (
            &app.topics.user_created,
            1,
            "io.wallethub.user.created.v1",
            user_id.as_str(),
        ),
        (
            &app.topics.wallet_created,
            2,
            "io.wallethub.wallet.created.v1",
            a.as_str(),
        ),
        (
            &app.topics.funds_added,
            1,
            "io.wallethub.funds.added.v1",
            a.as_str(),
        ),
        (
            &app.topics.funds_withdrawn,
            1,
            "io.wallethub.funds.withdrawn.v1",
            a.as_str(),
        ),
        (
            &app.topics.funds_transferred,
            1,
            "io.wallethub.funds.transferred.v1",
            a.as_str(),
        ),
        (
            &app.topics.funds_received,
            1,
            "io.wallethub.funds.received.v1",
            b.as_str(),
        ),
        (
            &app.topics.wallet_status,
            1,
            "io.wallethub.wallet.status-changed.v1",
            b.as_str(),
        ),
    ];
    // Each wallet's records carry its stream's sequence (`ce_sequence`): 1, 2, 3 ...
    let mut sequences: std::collections::BTreeMap<String, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    let brokers = &app.settings.kafka.brokers;
    for (topic, count, ce_type, first_key) in expectations {
        let records = read_records(brokers, topic, count).await;
        let keys: Vec<String> = records
            .iter()
            .map(|r| {
                r.key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            keys.iter().any(|k| k == first_key),
            "{topic}: key {first_key} in {keys:?}"
        );
        for record in &records {
            assert_eq!(header(record, "ce_specversion").as_deref(), Some("1.0"));
            assert_eq!(
                header(record, "ce_type").as_deref(),
                Some(ce_type),
                "{topic}"
            );
            assert_eq!(header(record, "ce_source").as_deref(), Some("/wallet-hub"));
            assert!(header(record, "ce_time").is_some());
            assert_eq!(
                header(record, "content-type").as_deref(),
                Some("application/json")
            );
            let key = record
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            assert_eq!(header(record, "ce_subject"), key, "subject is the key");
            let body: serde_json::Value =
                serde_json::from_slice(record.payload().expect("payload")).expect("JSON");
            assert_eq!(
                header(record, "ce_id").as_deref(),
                body["event_id"].as_str()
            );
            let (stored, sequence): (serde_json::Value, Option<i64>) =
                sqlx::query_as("SELECT payload, sequence FROM outbox WHERE event_id = $1::uuid")
                    .bind(body["event_id"].as_str().expect("event_id"))
                    .fetch_one(&app.pool)
                    .await
                    .expect("outbox row");
            assert_eq!(body, stored, "{topic}: the body is the stored event");
            let ce_sequence = header(record, "ce_sequence");
            assert_eq!(
                ce_sequence
                    .as_deref()
                    .map(|s| s.parse::<i64>().expect("digits")),
                sequence,
                "{topic}: ce_sequence is the stored sequence"
            );
            if let (Some(key), Some(ce_sequence)) = (key, ce_sequence) {
                sequences
                    .entry(key)
                    .or_default()
                    .push((ce_sequence, ce_type.to_owned()));
            }
        }
    }
    let padded = |n: i64| format!("{n:019}");
    let of = |wallet: &str| {
        let mut seen = sequences.get(wallet).cloned().unwrap_or_default();
        seen.sort();
        seen
    };
    assert_eq!(
        of(&a),
        [
            (padded(1), "io.wallethub.wallet.created.v1".to_owned()),
            (padded(2), "io.wallethub.funds.added.v1".to_owned()),
            (padded(3), "io.wallethub.funds.withdrawn.v1".to_owned()),
            (padded(4), "io.wallethub.funds.transferred.v1".to_owned()),
        ],
        "the source wallet's stream, gapless"
    );
    assert_eq!(
        of(&b),
        [
            (padded(1), "io.wallethub.wallet.created.v1".to_owned()),
            (padded(2), "io.wallethub.funds.received.v1".to_owned()),
            (
                padded(3),
                "io.wallethub.wallet.status-changed.v1".to_owned()
            ),
        ],
        "the receiving wallet's stream, gapless"
    );
    let received = read_records(brokers, &app.topics.funds_received, 1).await;
    let body: serde_json::Value =
        serde_json::from_slice(received[0].payload().expect("payload")).expect("JSON");
    assert_eq!(body["wallet_id"], b.as_str());
    assert_eq!(body["from_wallet_id"], a.as_str());
    assert_eq!(
        body["balance_after"],
        serde_json::json!({"value": "2.00", "currency": "USD"})
    );
    let transfers = read_records(brokers, &app.topics.funds_transferred, 1).await;
    let body: serde_json::Value =
        serde_json::from_slice(transfers[0].payload().expect("payload")).expect("JSON");
    assert_eq!(body["from_wallet_id"], a.as_str());
    assert_eq!(body["to_wallet_id"], b.as_str());
    assert_eq!(
        body["amount"],
        serde_json::json!({"value": "2.00", "currency": "USD"})
    );
}
