//! The welcome consumer applies each event once, however often it arrives.

use chrono::Utc;
use domain::{DomainEvent, EventContext, Wallet, WalletName};
use kafka::EventProducer;
use telemetry::TraceHeaders;
use uuid::Uuid;

use crate::helpers::{eventually, spawn_app_with};

fn wallet_created(user_id: Uuid) -> DomainEvent {
    let ctx = EventContext::new(Utc::now(), "dup");
    let name = WalletName::parse("Twice").expect("valid");
    let currency = "USD".parse().expect("ISO 4217");
    Wallet::create(Uuid::now_v7(), user_id, name, currency, &ctx)
        .1
        .into()
}

fn cloud_event(event: &DomainEvent) -> cloudevents::Event {
    let payload = event.to_json().expect("serializes");
    let meta = event.metadata();
    event_bindings::encode(&event_bindings::OutgoingEvent {
        event_id: meta.event_id,
        event_type: event.event_type(),
        aggregate_id: meta.aggregate_id,
        occurred_at: meta.occurred_at,
        payload: &payload,
        traceparent: None,
        tracestate: None,
    })
    .expect("valid CloudEvent")
}

#[tokio::test]
async fn a_wallet_created_event_delivered_twice_sends_one_welcome_notification() {
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let user = Uuid::now_v7();
    let first = wallet_created(user);
    let key = first.metadata().aggregate_id.to_string();
    let second = wallet_created(user);

    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    let topic = &app.topics.wallet_created;
    // Same event twice, then another wallet's event on the same key (same partition), so
    // that once the last one is applied, both copies have been processed.
    for event in [&first, &first, &second] {
        producer
            .send(topic, &key, cloud_event(event), &TraceHeaders::default())
            .expect("enqueued")
            .await
            .expect("delivered");
    }

    let list = eventually("both wallets' welcomes", || async {
        let list: Vec<serde_json::Value> = app
            .get(&format!("/v1/users/{user}/notifications"))
            .await
            .json()
            .await
            .expect("JSON");
        (list.len() >= 2).then_some(list)
    })
    .await;
    assert_eq!(list.len(), 2, "one notification per wallet");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(inbox, 2, "the duplicate was recognised, not applied");
}
