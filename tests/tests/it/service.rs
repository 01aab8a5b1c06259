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
async fn a_schema_base_that_is_not_an_http_url_stops_startup_before_anything_changes() {
    let (mut settings, _topics) = test_settings().await;
    settings.events.schema_base_url = "wallets.example.com".to_owned();
    let url = settings.database.url.clone();
    let error = Application::build(settings, &[])
        .await
        .expect_err("must not start");
    let text = format!("{error:#}");
    assert!(text.contains("events.schema_base_url"), "{text}");
    assert!(text.contains("wallets.example.com"), "{text}");
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(&url))
        .await
        .expect("test database");
    let migrated: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&pool)
            .await
            .expect("query");
    assert_eq!(migrated, None, "no migration ran");
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
        [
            "database",
            "database_pool",
            "kafka",
            "topics",
            "relay",
            "outbox",
            "consumer"
        ]
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
        "/v1/wallets/{id}/events",
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

/// The router is built from the documented handlers (`utoipa_axum::routes!`), so every route
/// it serves is documented by construction; this checks the document against the running
/// service: each documented operation is served and answers a status it documents.
#[tokio::test]
async fn every_documented_operation_is_served_and_answers_a_documented_status() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let url = app.url(&path.replace("{id}", &uuid::Uuid::nil().to_string()));
        for (method, operation) in item.as_object().expect("path item") {
            let request = match method.as_str() {
                "get" => app.client.get(&url).bearer_auth(app.operator_token()),
                "post" => app
                    .client
                    .post(&url)
                    .bearer_auth(app.operator_token())
                    .json(&serde_json::json!({})),
                other => panic!("{other} {path}: unexpected method"),
            };
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16().to_string();
            let body: serde_json::Value = response.json().await.expect("JSON answer");
            assert!(
                !body["type"].as_str().is_some_and(
                    |t| t.ends_with("/no-such-route") || t.ends_with("/method-not-allowed")
                ),
                "{method} {path} is served: {body}"
            );
            assert!(
                operation["responses"][&status].is_object(),
                "{method} {path} answered {status}, which it does not document: {body}"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 24, "every operation was tried");
}

/// The endpoints docs/security.md says need no token: (method, path, port).
fn documented_public_endpoints() -> Vec<(String, String, String)> {
    let doc = std::fs::read_to_string(wallet_hub_tests::binary::root().join("docs/security.md"))
        .expect("docs/security.md");
    let table = doc
        .split_once("<!-- public-endpoints -->")
        .expect("docs/security.md marks its table of public endpoints")
        .1;
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let endpoint = cells[1].trim_matches('`');
            let (method, path) = endpoint.split_once(' ').expect("`METHOD /path`");
            (method.to_owned(), path.to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_endpoints_documented_as_public_answer_without_a_token_and_every_v1_operation_refuses_none()
 {
    let app = spawn_app().await;
    let public = documented_public_endpoints();
    assert!(public.len() >= 8, "{public:?}");
    for (method, path, port) in &public {
        assert_eq!(method, "GET");
        let path = path
            .replace("{file}", "io.wallethub.funds.added.v1.json")
            .replace("{slug}", "insufficient-funds");
        let base = match port.as_str() {
            "API" => &app.address,
            "admin" => &app.admin_address,
            other => panic!("unknown port {other}"),
        };
        let status = app
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("answered")
            .status();
        assert_eq!(status, 200, "GET {path} on the {port} port without a token");
    }
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        assert!(
            path.starts_with("/v1/"),
            "{path} is documented, so it is an operation"
        );
        let url = app.url(&path.replace("{id}", &uuid::Uuid::nil().to_string()));
        for method in item.as_object().expect("path item").keys() {
            let request = match method.as_str() {
                "get" => app.client.get(&url),
                _ => app.client.post(&url).json(&serde_json::json!({})),
            };
            let status = request.send().await.expect("answered").status();
            assert_eq!(status, 401, "{method} {path} without a token");
        }
    }
}
