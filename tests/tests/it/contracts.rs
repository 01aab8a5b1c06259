//! The event contracts: the AsyncAPI document matches the code (and the committed copy),
//! the service serves it and the schemas, and the `dataschema` of each event it publishes
//! resolves to the committed schema its data is valid against.

use std::collections::BTreeSet;
use std::path::PathBuf;

use domain::EventType;
use event_bindings::schemas::{schema, schema_file};
use event_bindings::{EventBindings, SchemaValidators, cloud_event_type};
use rdkafka::Message;
use serde_json::Value;
use wallet_hub::Settings;
use wallet_hub_tests::{header, read_records, spawn_app};

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

/// Checks `doc` against what the code knows, independently of how it was generated:
/// every topic (and the dead-letter topic of every consumed one) is a channel, every
/// event type a message with its schema, and there is nothing else.
fn assert_describes(doc: &Value, bindings: &EventBindings, dlq_suffix: &str) {
    assert_eq!(doc["asyncapi"], "3.0.0");
    let consumed = consumers::consumed_event_types();
    let mut expected_topics: BTreeSet<String> =
        bindings.topics().iter().map(|t| (*t).to_owned()).collect();
    let mut expected_messages: BTreeSet<String> = BTreeSet::new();
    for event_type in EventType::ALL {
        expected_messages.insert(cloud_event_type(event_type).to_owned());
        if consumed.contains(&event_type) {
            expected_topics.insert(format!("{}{dlq_suffix}", bindings.destination(event_type)));
            expected_messages.insert(format!("{}.dead-letter", cloud_event_type(event_type)));
        }
    }
    let channels = doc["channels"].as_object().expect("channels");
    let topics: BTreeSet<String> = channels
        .values()
        .map(|c| c["address"].as_str().expect("address").to_owned())
        .collect();
    assert_eq!(topics, expected_topics, "channels are exactly our topics");
    assert_eq!(
        channels.len(),
        expected_topics.len(),
        "one channel per topic"
    );
    assert_eq!(keys(&doc["components"]["messages"]), expected_messages);

    for event_type in EventType::ALL {
        let ty = cloud_event_type(event_type);
        let message = &doc["components"]["messages"][ty];
        assert_eq!(message["headers"]["properties"]["ce_type"]["const"], ty);
        assert_eq!(
            message["headers"]["properties"]
                .get("ce_sequence")
                .is_some(),
            domain::stream::is_wallet_event(event_type),
            "{ty}: wallet events, and only they, carry their place in the stream"
        );
        assert_eq!(
            message["payload"]["$ref"],
            format!("#/components/schemas/{ty}")
        );
        let mut expected = schema(event_type);
        expected.as_object_mut().expect("object").remove("$schema");
        assert_eq!(doc["components"]["schemas"][ty], expected, "{ty} payload");
        let channel = channels
            .values()
            .find(|c| c["address"] == bindings.destination(event_type))
            .expect("the type's channel");
        assert_eq!(keys(&channel["messages"]), BTreeSet::from([ty.to_owned()]));
    }
    for (id, operation) in doc["operations"].as_object().expect("operations") {
        let channel = operation["channel"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/channels/"))
            .expect("channel ref");
        assert!(channels.contains_key(channel), "{id} names a channel");
    }
    let dead_letter_headers = &doc["components"]["messages"]
        [format!("{}.dead-letter", cloud_event_type(EventType::WalletCreated))]["headers"]["properties"];
    for name in [
        kafka::consumer::dlq_headers::TOPIC,
        kafka::consumer::dlq_headers::PARTITION,
        kafka::consumer::dlq_headers::OFFSET,
        kafka::consumer::dlq_headers::CONSUMER,
        kafka::consumer::dlq_headers::ERROR_CLASS,
        kafka::consumer::dlq_headers::ERROR_MESSAGE,
        kafka::consumer::dlq_headers::TIME,
        "traceparent",
        "tracestate",
        "ce_id",
    ] {
        assert!(dead_letter_headers.get(name).is_some(), "{name} documented");
    }
}

#[test]
fn the_committed_asyncapi_document_describes_every_topic_and_type_and_nothing_else() {
    let settings = Settings::load(None).expect("default settings");
    let bindings = EventBindings::new(&settings.bindings).expect("default bindings");
    let suffix = &settings.consumer.dead_letter_suffix;
    let generated = event_bindings::asyncapi::document_text(
        &bindings,
        suffix,
        &consumers::consumed_event_types(),
    );
    let path = repo_file("asyncapi/asyncapi.json");
    if std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("written");
    }
    let committed = std::fs::read_to_string(&path).expect("asyncapi/asyncapi.json");
    assert!(
        committed == generated,
        "asyncapi/asyncapi.json differs from the code; regenerate with UPDATE_SCHEMAS=1 \
         cargo test -p wallet-hub-tests --test it contracts"
    );
    let doc: Value = serde_json::from_str(&committed).expect("JSON");
    assert_describes(&doc, &bindings, suffix);
}

#[test]
fn a_document_missing_a_topic_or_with_a_stray_one_fails_the_check() {
    let bindings = EventBindings::default();
    let good =
        event_bindings::asyncapi::document(&bindings, ".dlq", &consumers::consumed_event_types());
    let mut missing = good.clone();
    missing["channels"]
        .as_object_mut()
        .expect("channels")
        .remove("wallet_created.dlq");
    let mut stray = good.clone();
    stray["channels"]["extra"] = serde_json::json!({"address": "no-such-topic", "messages": {}});
    for doc in [missing, stray] {
        let outcome = std::panic::catch_unwind(|| assert_describes(&doc, &bindings, ".dlq"));
        assert!(outcome.is_err(), "the check fails");
    }
}

#[tokio::test]
async fn every_published_event_names_a_served_schema_equal_to_the_committed_one() {
    let app = spawn_app().await;
    let (_, _, b) = app.money_scenario().await;
    assert_eq!(
        app.post_json(&format!("/v1/wallets/{b}/freeze"), &serde_json::json!({}))
            .await
            .status(),
        200
    );
    let validators = SchemaValidators::new();
    let topics = [
        (&app.topics.user_created, EventType::UserCreated),
        (&app.topics.wallet_created, EventType::WalletCreated),
        (&app.topics.funds_added, EventType::FundsAdded),
        (&app.topics.funds_withdrawn, EventType::FundsWithdrawn),
        (&app.topics.funds_transferred, EventType::FundsTransferred),
        (&app.topics.wallet_status, EventType::WalletStatusChanged),
    ];
    for (topic, event_type) in topics {
        let record = read_records(&app.settings.kafka.brokers, topic, 1)
            .await
            .remove(0);
        let ty = cloud_event_type(event_type);
        let url = header(&record, "ce_dataschema").expect("dataschema");
        assert_eq!(url, app.url(&format!("/schemas/{ty}.json")));
        let served = app.client.get(&url).send().await.expect("schema fetched");
        assert_eq!(served.status(), 200, "{url}");
        assert_eq!(served.headers()["content-type"], "application/schema+json");
        let served = served.text().await.expect("text");
        let committed =
            std::fs::read_to_string(repo_file(&format!("schemas/{}", schema_file(event_type))))
                .expect("committed schema");
        assert_eq!(served, committed, "{ty}");
        let data: Value = serde_json::from_slice(record.payload().expect("data")).expect("JSON");
        assert_eq!(validators.validate(ty, &data), Ok(()), "{ty}");
    }

    let missing = app
        .client
        .get(app.url("/schemas/io.wallethub.wallet.created.v9.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let doc: Value = app
        .client
        .get(app.url("/asyncapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let bindings = EventBindings::new(&app.settings.bindings).expect("test bindings");
    assert_describes(&doc, &bindings, &app.settings.consumer.dead_letter_suffix);
}
