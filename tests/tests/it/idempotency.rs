//! `Idempotency-Key` with Stripe's semantics.

use std::time::Duration;

use uuid::Uuid;

use wallet_hub_tests::{TestApp, spawn_app};

async fn post_with_key(
    app: &TestApp,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let response = app
        .request(reqwest::Method::POST, path, Some(body))
        .await
        .header("idempotency-key", key)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    (status, replayed, response.json().await.expect("JSON"))
}

async fn deposits(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE kind = 'deposit'")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn wallet(app: &TestApp, id: &str) -> serde_json::Value {
    app.get(&format!("/v1/wallets/{id}"))
        .await
        .json()
        .await
        .expect("wallet JSON")
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_answer_and_does_nothing() {
    let app = spawn_app().await;
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/wallets/{id}/deposits");
    let body = serde_json::json!({"amount": "5.00"});
    let first = post_with_key(&app, &path, "key-1", &body).await;
    let outbox = app.outbox_rows().await;
    let second = post_with_key(&app, &path, "key-1", &body).await;
    assert_eq!(first.0, 201);
    assert_eq!(first.1, None);
    assert_eq!(second.0, 201);
    assert_eq!(second.1.as_deref(), Some("true"));
    assert_eq!(second.2, first.2, "same body, same deposit id");
    assert_eq!(deposits(&app).await, 1);
    assert_eq!(app.outbox_rows().await, outbox, "no second event");

    let other = post_with_key(&app, &path, "key-1", &serde_json::json!({"amount": "6.00"})).await;
    assert_eq!(other.0, 422);
    assert!(
        other.2["type"]
            .as_str()
            .expect("type")
            .ends_with("/idempotency-key-reuse")
    );

    // Keys are the caller's: the owner's withdrawal and another payment processor's
    // deposit use the same key string as keys of their own.
    let withdrawal = post_with_key(
        &app,
        &format!("/v1/wallets/{id}/withdrawals"),
        "key-1",
        &serde_json::json!({"amount": "1.00"}),
    )
    .await;
    assert_eq!(withdrawal.0, 201);
    let other_caller = app
        .client
        .post(app.url(&path))
        .bearer_auth(app.token("another-payment-processor", &["wallets:deposit"]))
        .header("idempotency-key", "key-1")
        .json(&body)
        .send()
        .await
        .expect("request sent");
    assert_eq!(other_caller.status(), 201);
    assert_eq!(deposits(&app).await, 2);
}

#[tokio::test]
async fn refused_commands_are_replayed_but_invalid_requests_are_not_stored() {
    let app = spawn_app().await;
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/wallets/{id}/withdrawals");
    let body = serde_json::json!({"amount": "1.00"});
    let refused = post_with_key(&app, &path, "w-1", &body).await;
    assert_eq!(refused.0, 422);
    assert_eq!(app.deposit(&id, "5.00").await.status(), 201);
    let replay = post_with_key(&app, &path, "w-1", &body).await;
    assert_eq!(replay.0, 422, "the stored answer, not a new attempt");
    assert_eq!(replay.1.as_deref(), Some("true"));
    assert_eq!(replay.2, refused.2);

    let invalid = post_with_key(&app, &path, "w-2", &serde_json::json!({"amount": "abc"})).await;
    assert_eq!(invalid.0, 422);
    let valid = post_with_key(&app, &path, "w-2", &body).await;
    assert_eq!(
        valid.0, 201,
        "a request that failed validation did not take the key"
    );

    let long_key = "k".repeat(256);
    let too_long = post_with_key(&app, &path, &long_key, &body).await;
    assert_eq!(too_long.0, 400);
    let ok_key = "k".repeat(255);
    assert_eq!(post_with_key(&app, &path, &ok_key, &body).await.0, 201);
}

#[tokio::test]
async fn a_retry_while_the_first_request_is_still_running_gets_409() {
    let app = spawn_app().await;
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let wallet: Uuid = id.parse().expect("uuid");
    // Hold the wallet's row lock so the first request stops inside its transaction.
    let mut blocker = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE")
        .bind(wallet)
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let path = format!("/v1/wallets/{id}/deposits");
    let body = serde_json::json!({"amount": "2.00"});
    let first_request = app
        .request(reqwest::Method::POST, &path, Some(&body))
        .await
        .header("idempotency-key", "slow");
    let first = tokio::spawn(async move {
        first_request
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let retry = post_with_key(&app, &path, "slow", &body).await;
    assert_eq!(retry.0, 409);
    assert!(
        retry.2["type"]
            .as_str()
            .expect("type")
            .ends_with("/idempotency-in-flight")
    );

    blocker.rollback().await.expect("release");
    assert_eq!(first.await.expect("first request"), 201);
    let later = post_with_key(&app, &path, "slow", &body).await;
    assert_eq!((later.0, later.1.as_deref()), (201, Some("true")));
    assert_eq!(deposits(&app).await, 1);
}

#[tokio::test]
async fn two_concurrent_requests_with_one_key_take_effect_once() {
    let app = spawn_app().await;
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/wallets/{id}/deposits");
    let body = serde_json::json!({"amount": "3.00"});
    let (a, b) = tokio::join!(
        post_with_key(&app, &path, "twice", &body),
        post_with_key(&app, &path, "twice", &body)
    );
    assert_eq!(deposits(&app).await, 1);
    for outcome in [&a, &b] {
        assert!(outcome.0 == 201 || outcome.0 == 409, "{outcome:?}");
    }
    assert!(a.0 == 201 || b.0 == 201);
    if a.0 == 201 && b.0 == 201 {
        assert_eq!(a.2, b.2, "the second got the first's answer");
    }
    let wallet = wallet(&app, &id).await;
    assert_eq!(wallet["balance"], "3.00");
}

#[tokio::test]
async fn a_key_is_stored_with_its_concrete_path_and_refused_on_another_path() {
    let app = spawn_app().await;
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let body = serde_json::json!({"amount": "5.00"});
    let path = format!("/v1/wallets/{id}/deposits");
    assert_eq!(post_with_key(&app, &path, "key-1", &body).await.0, 201);
    let freeze = format!("/v1/wallets/{id}/freeze");
    let null = serde_json::Value::Null;
    let reused = post_with_key(&app, &freeze, "key-1", &null).await;
    assert_eq!(reused.0, 422, "the same caller's key on another path");
    assert!(
        reused.2["type"]
            .as_str()
            .expect("type")
            .ends_with("/idempotency-key-reuse")
    );
    let wallet = wallet(&app, &id).await;
    assert_eq!(
        wallet["status"], "active",
        "the refused freeze changed nothing"
    );
    assert_eq!(post_with_key(&app, &freeze, "key-2", &null).await.0, 200);
    let routes: Vec<(String, String)> =
        sqlx::query_as("SELECT key, route FROM idempotency_keys ORDER BY key")
            .fetch_all(&app.pool)
            .await
            .expect("routes");
    assert_eq!(
        routes,
        [
            (
                "key-1".to_owned(),
                format!("POST /v1/wallets/{id}/deposits")
            ),
            ("key-2".to_owned(), format!("POST /v1/wallets/{id}/freeze")),
        ],
        "each key remembers the path, ids included, it was first used on"
    );
}
