//! Conformance from another language: the official CloudEvents SDK for Java
//! (`conformance/java`, run by `scripts/conformance-java`) reads every event type the
//! service published and checks its attributes, that its `dataschema` serves our committed
//! schema, and its data against that schema. It is a test of us, so it is shown to fail on
//! an event that does not conform.

use std::path::PathBuf;
use std::process::Output;

use cloudevents::AttributesWriter;
use domain::EventType;
use event_bindings::cloud_event_type;
use kafka::EventProducer;
use serde_json::json;
use telemetry::TraceHeaders;
use uuid::Uuid;
use wallet_hub_client::{Amount, Capture, PlaceHold};
use wallet_hub_tests::{
    TestApp, cloud_event, deposit_event, read_records, spawn_app, spawn_app_with,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the Java consumer over `topics`, expecting `types`.
async fn java_consumer(app: &TestApp, topics: &[&str], types: &[&str]) -> Output {
    let args = vec![
        "--brokers".to_owned(),
        app.settings.kafka.brokers.clone(),
        "--topics".to_owned(),
        topics.join(","),
        "--schemas".to_owned(),
        repo().join("schemas").display().to_string(),
        "--expect-types".to_owned(),
        types.join(","),
        "--timeout-seconds".to_owned(),
        "60".to_owned(),
    ];
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(repo().join("scripts/conformance-java"))
            .args(&args)
            .output()
            .expect("scripts/conformance-java runs (needs Java 17 and Maven)")
    })
    .await
    .expect("no panic")
}

#[tokio::test]
async fn the_java_cloudevents_sdk_finds_every_event_type_we_publish_conformant() {
    let app = spawn_app().await;
    let (_, _, b) = app.money_scenario().await;
    assert_eq!(
        app.post_json(&format!("/v1/wallets/{b}/freeze"), &json!({}))
            .await
            .status(),
        200
    );
    hold_scenario(&app).await;
    let topics = [
        app.topics.user_created.as_str(),
        app.topics.wallet_created.as_str(),
        app.topics.funds_added.as_str(),
        app.topics.funds_withdrawn.as_str(),
        app.topics.funds_transferred.as_str(),
        app.topics.wallet_status.as_str(),
        app.topics.hold_placed.as_str(),
        app.topics.hold_captured.as_str(),
        app.topics.hold_voided.as_str(),
        app.topics.hold_expired.as_str(),
        app.topics.funds_received.as_str(),
    ];
    for topic in topics {
        read_records(&app.settings.kafka.brokers, topic, 1).await;
    }
    // The types the service publishes (the analytics job's are derived, written by Flink).
    let types: Vec<&str> = EventType::ALL
        .into_iter()
        .filter(|t| !t.is_derived())
        .map(cloud_event_type)
        .collect();
    let output = java_consumer(&app, &topics, &types).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for ty in types {
        assert!(stdout.contains(&format!(" x {ty}")), "{ty} read: {stdout}");
    }
}

/// A hold of each fate: captured, voided, and expired (recorded by the sweeper).
async fn hold_scenario(app: &TestApp) {
    let wallet = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(wallet, &Amount::new("5.00"), None)
        .await
        .expect("deposit");
    let owner = app.as_owner(wallet).await;
    let mut holds = Vec::new();
    for seconds in [600, 600, 1] {
        let placed = owner
            .place_hold(wallet, &PlaceHold::new("1.00", seconds), None)
            .await
            .expect("placed");
        holds.push(placed.body.id);
    }
    owner
        .capture_hold(holds[0], &Capture::default(), None)
        .await
        .expect("captured");
    owner.void_hold(holds[1], None).await.expect("voided");
}

#[tokio::test]
async fn the_java_conformance_consumer_fails_on_an_event_that_breaks_its_schema() {
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let wallet = Uuid::now_v7();
    let mut event = cloud_event(&deposit_event(wallet, 100));
    event.set_dataschema(Some(
        url::Url::parse(&app.url("/schemas/io.wallethub.funds.added.v1.json")).expect("URL"),
    ));
    let mut data: serde_json::Value = match event.data() {
        Some(cloudevents::Data::Binary(bytes)) => serde_json::from_slice(bytes).expect("JSON"),
        other => panic!("binary data expected, got {other:?}"),
    };
    data["amount"]["value"] = json!("ten dollars");
    event.set_data("application/json", data.to_string().into_bytes());
    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    producer
        .send(
            &app.topics.funds_added,
            &wallet.to_string(),
            event,
            &TraceHeaders::default(),
        )
        .expect("enqueued")
        .await
        .expect("delivered");

    let output = java_consumer(
        &app,
        &[app.topics.funds_added.as_str()],
        &["io.wallethub.funds.added.v1"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the bad event must fail: {stderr}"
    );
    assert!(
        stderr.contains("FAIL:") && stderr.contains("data:") && stderr.contains("amount"),
        "{stderr}"
    );
}
