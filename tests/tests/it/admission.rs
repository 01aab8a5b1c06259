//! Our consumers trust nothing they read: every refusal goes to the dead-letter topic with
//! its class, changes nothing, and the consumer moves on to the next message.

use std::time::Duration;

use chrono::Utc;
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
use cloudevents::{AttributesWriter, Event};
use domain::{DomainEvent, EventContext, UserId, Wallet, WalletId, WalletName};
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use uuid::Uuid;
use wallet_hub_tests::{TestApp, cloud_event, deposit_event, eventually, header, spawn_app_with};

/// Sends `event` in binary mode to `topic` under `key`, with `extra` headers appended.
async fn send(app: &TestApp, topic: &str, key: &str, event: Event, extra: &[(&str, &str)]) {
    let raw: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    let message = MessageRecord::from_event(event).expect("record");
    let mut record = FutureRecord::to(topic).key(key).message_record(&message);
    let mut headers = record.headers.take().expect("ce headers");
    for (name, value) in extra {
        headers = headers.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    record.headers = Some(headers);
    raw.send(record, Duration::from_secs(10))
        .await
        .expect("delivered");
}

fn with_data(mut event: Event, edit: impl FnOnce(&mut serde_json::Value)) -> Event {
    let Some(cloudevents::Data::Binary(bytes)) = event.data() else {
        panic!("binary data expected")
    };
    let mut data: serde_json::Value = serde_json::from_slice(bytes).expect("JSON");
    edit(&mut data);
    event.set_data("application/json", data.to_string().into_bytes());
    event
}

async fn total_in(app: &TestApp, wallet: &str) -> serde_json::Value {
    let response = app.get(&format!("/v1/wallets/{wallet}/activity")).await;
    if response.status() == 404 {
        return json!(null);
    }
    response.json::<serde_json::Value>().await.expect("JSON")["total_in"].clone()
}

#[tokio::test]
async fn untrusted_unknown_and_invalid_events_are_dead_lettered_with_their_class_and_change_nothing()
 {
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let topic = app.topics.funds_added.clone();
    let user = app.fixture_user().await;
    let wallet = app.create_wallet_for(user, "USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let wallet_id: Uuid = wallet.parse().expect("uuid");
    let hostile = |edit: fn(&mut Event)| {
        let mut event = cloud_event(&deposit_event(wallet_id, 100));
        edit(&mut event);
        event
    };
    // (expected class, event): each would add 1.00 if it were applied.
    let cases: Vec<(&str, Event)> = vec![
        (
            "untrusted-source",
            hostile(|e| {
                e.set_source("/someone-else");
            }),
        ),
        (
            "unknown-type",
            hostile(|e| {
                e.set_type("io.wallethub.funds.printed.v1");
            }),
        ),
        (
            "unknown-version",
            hostile(|e| {
                e.set_type("io.wallethub.funds.added.v2");
            }),
        ),
        (
            "unknown-version",
            with_data(cloud_event(&deposit_event(wallet_id, 100)), |d| {
                d["schema_version"] = json!(2);
            }),
        ),
        (
            "schema-invalid",
            with_data(cloud_event(&deposit_event(wallet_id, 100)), |d| {
                d["amount"]["value"] = json!("1e2");
            }),
        ),
        (
            "schema-invalid",
            hostile(|e| {
                e.set_dataschema(Some(
                    "http://127.0.0.1:8080/schemas/io.wallethub.wallet.created.v1.json"
                        .parse::<url::Url>()
                        .expect("URL"),
                ));
            }),
        ),
    ];
    for (_, event) in &cases {
        send(&app, &topic, &wallet, event.clone(), &[]).await;
    }
    // A good event after them on the same key (same partition): once it is applied, every
    // hostile one before it has been dealt with.
    send(
        &app,
        &topic,
        &wallet,
        cloud_event(&deposit_event(wallet_id, 700)),
        &[],
    )
    .await;
    eventually("the good event applied", || async {
        (total_in(&app, &wallet).await == "7.00").then_some(())
    })
    .await;

    let dead = wallet_hub_tests::read_records(
        &app.settings.kafka.brokers,
        &format!("{topic}.dlq"),
        cases.len(),
    )
    .await;
    let classes: Vec<String> = dead
        .iter()
        .map(|r| header(r, "dlq_error_class").expect("class"))
        .collect();
    let expected: Vec<&str> = cases.iter().map(|(class, _)| *class).collect();
    assert_eq!(classes, expected);
    assert_eq!(
        total_in(&app, &wallet).await,
        "7.00",
        "none of them applied"
    );
}

#[tokio::test]
async fn forged_dead_letter_headers_are_replaced_so_a_redrive_goes_back_where_the_record_came_from()
{
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let topic = app.topics.funds_added.clone();
    let wallet_id = Uuid::now_v7();
    let mut event = cloud_event(&deposit_event(wallet_id, 100));
    event.set_source("/attacker");
    let victim = format!("victim-{}", Uuid::now_v7().simple());
    send(
        &app,
        &topic,
        &wallet_id.to_string(),
        event,
        &[
            ("dlq_original_topic", victim.as_str()),
            ("dlq_error_class", "permanent"),
        ],
    )
    .await;
    let dead =
        wallet_hub_tests::read_records(&app.settings.kafka.brokers, &format!("{topic}.dlq"), 1)
            .await;
    let originals: Vec<String> = {
        use rdkafka::Message;
        use rdkafka::message::Headers;
        dead[0]
            .headers()
            .expect("headers")
            .iter()
            .filter(|h| h.key == "dlq_original_topic")
            .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
            .collect()
    };
    assert_eq!(
        originals,
        [topic.as_str()],
        "only our own dlq_original_topic"
    );
    assert_eq!(
        header(&dead[0], "dlq_error_class").as_deref(),
        Some("untrusted-source")
    );

    let kafka = app.settings.kafka.clone();
    let dlq_topic = format!("{topic}.dlq");
    let listed = tokio::task::spawn_blocking(move || kafka::dlq::list(&kafka, &dlq_topic))
        .await
        .expect("no panic")
        .expect("list");
    assert_eq!(listed[0].header("dlq_original_topic"), Some(topic.as_str()));
}

#[tokio::test]
async fn a_wallet_name_the_api_would_refuse_sends_no_welcome_and_is_dead_lettered() {
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let user = app.fixture_user().await;
    let ctx = EventContext::new(Utc::now(), "hostile");
    let name = WalletName::parse("Fine").expect("valid");
    let currency = "USD".parse().expect("ISO 4217");
    let (_, mut created) =
        Wallet::create(WalletId::new(), UserId::from(user), name, currency, &ctx);
    created.name = "Pay here: \u{1b}]8;;http://evil.example\u{7}".to_owned();
    let key = created.wallet_id.to_string();
    let event: DomainEvent = created.into();
    send(
        &app,
        &app.topics.wallet_created,
        &key,
        cloud_event(&event),
        &[],
    )
    .await;

    let dead = wallet_hub_tests::read_records(
        &app.settings.kafka.brokers,
        &format!("{}.dlq", app.topics.wallet_created),
        1,
    )
    .await;
    assert_eq!(
        header(&dead[0], "dlq_error_class").as_deref(),
        Some("permanent")
    );
    assert!(
        header(&dead[0], "dlq_error_message").is_some_and(|m| m.contains("control characters")),
        "{:?}",
        header(&dead[0], "dlq_error_message")
    );
    let list: Vec<serde_json::Value> = app.list(&format!("/v1/users/{user}/notifications")).await;
    assert!(list.is_empty(), "no notification: {list:?}");
}
