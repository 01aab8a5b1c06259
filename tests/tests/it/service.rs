//! Assembly and configuration of the service.

use std::collections::BTreeMap;

use wallet_hub::Application;

use wallet_hub_tests::{spawn_app, test_settings};

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

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_ui_needs_no_internet() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/users",
        "/v1/users/{id}",
        "/v1/users/{id}/wallets",
        "/v1/users/{id}/notifications",
        "/v1/wallets",
        "/v1/wallets/{id}",
        "/v1/wallets/{id}/deposits",
        "/v1/wallets/{id}/withdrawals",
        "/v1/wallets/{id}/freeze",
        "/v1/wallets/{id}/unfreeze",
        "/v1/wallets/{id}/close",
        "/v1/wallets/{id}/transactions",
        "/v1/transfers",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.expect("HTML");
    assert!(html.contains("swagger"), "Swagger UI page");
    assert!(
        !html.contains("cdn") && !html.contains("unpkg"),
        "assets are served locally"
    );
    let css = app.get("/docs/swagger-ui.css").await;
    assert_eq!(css.status(), 200, "vendored asset");
}

#[test]
fn every_route_the_router_serves_is_in_the_openapi_document() {
    use utoipa::OpenApi;
    let doc = api::openapi::ApiDoc::openapi();
    let sources = [
        include_str!("../../../crates/api/src/users.rs"),
        include_str!("../../../crates/api/src/wallets/mod.rs"),
        include_str!("../../../crates/api/src/transfers.rs"),
        include_str!("../../../crates/api/src/notifications.rs"),
    ];
    for source in sources {
        for line in source
            .lines()
            .filter(|l| l.trim_start().starts_with(".route(\""))
        {
            let path = line.split('"').nth(1).expect("quoted path");
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} missing from OpenAPI"
            );
        }
    }
}
