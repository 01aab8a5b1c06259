//! Conditional requests on a wallet: `ETag` and `If-None-Match` (304) on reads, `If-Match`
//! (412, changing nothing) on money movements and status changes.

use reqwest::{Method, StatusCode};
use wallet_hub_tests::{TestApp, spawn_app};

async fn read(app: &TestApp, id: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = app
        .request(Method::GET, &format!("/v1/wallets/{id}"), None)
        .await;
    if let Some(tag) = if_none_match {
        request = request.header("If-None-Match", tag);
    }
    request.send().await.expect("request sent")
}

async fn post_if_match(
    app: &TestApp,
    path: &str,
    body: Option<serde_json::Value>,
    tag: &str,
) -> reqwest::Response {
    app.request(Method::POST, path, body.as_ref())
        .await
        .header("If-Match", tag)
        .send()
        .await
        .expect("request sent")
}

fn etag(response: &reqwest::Response) -> String {
    response.headers()["etag"]
        .to_str()
        .expect("ASCII ETag")
        .to_owned()
}

#[tokio::test]
async fn a_wallet_read_carries_its_version_as_etag_and_a_current_copy_gets_304() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");

    let first = read(&app, id, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tag = etag(&first);
    let body: serde_json::Value = first.json().await.expect("JSON");
    assert_eq!(tag, format!("\"{}\"", body["version"]));

    let cached = read(&app, id, Some(&tag)).await;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag(&cached), tag);
    assert!(
        cached.bytes().await.expect("body").is_empty(),
        "304 has no body"
    );
    assert_eq!(
        read(&app, id, Some("*")).await.status(),
        StatusCode::NOT_MODIFIED
    );
    let weak = format!("W/{tag}");
    assert_eq!(
        read(&app, id, Some(&weak)).await.status(),
        StatusCode::NOT_MODIFIED
    );

    assert_eq!(app.deposit(id, "1.00").await.status(), 201);
    let changed = read(&app, id, Some(&tag)).await;
    assert_eq!(
        changed.status(),
        StatusCode::OK,
        "a stale copy gets the wallet"
    );
    assert_ne!(etag(&changed), tag);
    let other = read(&app, id, Some("\"not-ours\"")).await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn changes_with_a_current_if_match_go_through() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    let tag = etag(&read(&app, id, None).await);

    let deposit = post_if_match(
        &app,
        &format!("/v1/wallets/{id}/deposits"),
        Some(serde_json::json!({"amount": "5.00"})),
        &tag,
    )
    .await;
    assert_eq!(deposit.status(), StatusCode::CREATED);

    let tag = etag(&read(&app, id, None).await);
    let withdrawal = post_if_match(
        &app,
        &format!("/v1/wallets/{id}/withdrawals"),
        Some(serde_json::json!({"amount": "5.00"})),
        &tag,
    )
    .await;
    assert_eq!(withdrawal.status(), StatusCode::CREATED);

    let freeze = post_if_match(&app, &format!("/v1/wallets/{id}/freeze"), None, "*").await;
    assert_eq!(freeze.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    let stale = etag(&read(&app, id, None).await);
    assert_eq!(app.deposit(id, "10.00").await.status(), 201);
    let before: serde_json::Value = read(&app, id, None).await.json().await.expect("JSON");
    let outbox_before = app.outbox_rows().await;

    let attempts = [
        (
            format!("/v1/wallets/{id}/deposits"),
            Some(serde_json::json!({"amount": "1.00"})),
        ),
        (
            format!("/v1/wallets/{id}/withdrawals"),
            Some(serde_json::json!({"amount": "1.00"})),
        ),
        (format!("/v1/wallets/{id}/freeze"), None),
        (format!("/v1/wallets/{id}/unfreeze"), None),
        (format!("/v1/wallets/{id}/close"), None),
    ];
    for (path, body) in attempts {
        for tag in [stale.as_str(), "W/\"2\"", "\"x\""] {
            let response = post_if_match(&app, &path, body.clone(), tag).await;
            assert_eq!(
                response.status(),
                StatusCode::PRECONDITION_FAILED,
                "{path} {tag}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let problem: serde_json::Value = response.json().await.expect("problem");
            assert_eq!(
                problem["type"],
                app.url("/problems/precondition-failed").as_str()
            );
        }
    }

    let after: serde_json::Value = read(&app, id, None).await.json().await.expect("JSON");
    assert_eq!(after, before, "balance, status and version unchanged");
    assert_eq!(app.outbox_rows().await, outbox_before, "no event written");
    let history: serde_json::Value = app
        .get(&format!("/v1/wallets/{id}/transactions"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(1),
        "one deposit only"
    );
}

#[tokio::test]
async fn a_412_with_an_idempotency_key_is_not_stored_so_a_corrected_retry_runs() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    let path = format!("/v1/wallets/{id}/deposits");
    let body = serde_json::json!({"amount": "1.00"});
    let send = |tag: String| {
        let (app, path, body) = (&app, path.clone(), body.clone());
        async move {
            app.request(Method::POST, &path, Some(&body))
                .await
                .header("If-Match", tag)
                .header("Idempotency-Key", "precondition-retry")
                .send()
                .await
                .expect("request sent")
        }
    };
    assert_eq!(send("\"999\"".to_owned()).await.status(), 412);
    let current = etag(&read(&app, id, None).await);
    let retried = send(current).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn the_typed_client_reads_conditionally_and_changes_only_the_version_it_saw() {
    use wallet_hub_client::{Amount, Error};

    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await;
    let owner = app.as_owner(wallet.id).await;
    let operator = app.operator();

    let seen = owner.get_wallet(wallet.id).await.expect("read");
    let tag = seen.etag.clone().expect("an ETag");
    assert!(
        owner
            .get_wallet_if_changed(wallet.id, &tag)
            .await
            .expect("conditional read")
            .is_none(),
        "unchanged: 304"
    );

    operator
        .with_if_match(&tag)
        .deposit(wallet.id, &Amount::new("5.00"), None)
        .await
        .expect("the version it saw: applied");
    let stale = operator
        .with_if_match(&tag)
        .deposit(wallet.id, &Amount::new("7.00"), None)
        .await
        .expect_err("a stale version");
    match stale {
        Error::Problem(problem) => {
            assert_eq!(problem.problem.status, 412);
            assert!(problem.problem.type_uri.ends_with("precondition-failed"));
        }
        other => panic!("expected 412 problem+json, got {other:?}"),
    }

    let fresh = owner
        .get_wallet_if_changed(wallet.id, &tag)
        .await
        .expect("conditional read")
        .expect("changed: the wallet");
    assert_eq!(
        fresh.body.balance, "5.00",
        "the stale deposit changed nothing"
    );
    assert_ne!(fresh.etag.as_deref(), Some(tag.as_str()));
}
