//! Assembly and configuration of the service.

use std::collections::BTreeMap;

use wallet_hub::Application;

use crate::helpers::{spawn_app, test_settings};

#[tokio::test]
async fn a_typo_in_the_bindings_stops_startup_with_a_clear_error() {
    let (mut settings, _topics) = test_settings().await;
    settings.bindings = BTreeMap::from([("walletCreatedProducer".to_owned(), "x".to_owned())]);
    let error = Application::build(settings, &[])
        .await
        .expect_err("must not start");
    let text = format!("{error:#}");
    assert!(text.contains("bindings"), "{text}");
    assert!(text.contains("walletCreatedProducer"), "{text}");
}

#[tokio::test]
async fn health_endpoints_answer_and_shutdown_is_clean() {
    let app = spawn_app().await;
    let live = app.admin_get("/health/live").await;
    assert_eq!(live.status(), 200);
    let ready = app.admin_get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    let names: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["database", "database_pool", "kafka", "outbox", "consumer"]
    );
    assert!(
        body["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["status"] == "up"),
        "{body}"
    );
    assert_eq!(
        app.get("/health/ready").await.status(),
        404,
        "health is on the admin port only"
    );
    app.stop()
        .await
        .expect("API, relay and consumer stop without error");
}
