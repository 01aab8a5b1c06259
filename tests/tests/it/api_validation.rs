//! Bad input gets a clear RFC 9457 answer and changes nothing: no wallet, no balance
//! change, no outbox row.

use uuid::Uuid;

use wallet_hub_tests::{TestApp, spawn_app};

/// Asserts a problem+json answer with `status` and a `type` ending in `slug`.
async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "problem+json content type"
    );
    let problem: serde_json::Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["status"], status);
    let type_uri = problem["type"].as_str().expect("type");
    assert!(
        type_uri.ends_with(slug),
        "type {type_uri} should end with {slug}"
    );
    assert!(problem["title"].is_string());
    assert!(problem["detail"].is_string());
    problem
}

async fn balance_and_version(app: &TestApp, wallet_id: &str) -> (String, i64) {
    let wallet: serde_json::Value = app
        .get(&format!("/v1/wallets/{wallet_id}"))
        .await
        .json()
        .await
        .expect("wallet JSON");
    (
        wallet["balance"].as_str().expect("balance").to_owned(),
        wallet["version"].as_i64().expect("version"),
    )
}

/// `POST /v1/wallets` with `body` as sent, by the holder of `token`.
async fn post_wallet(
    app: &TestApp,
    token: &str,
    content_type: Option<&str>,
    body: String,
) -> reqwest::Response {
    let request = app.client.post(app.url("/v1/wallets")).bearer_auth(token);
    let request = match content_type {
        Some(content_type) => request.header("content-type", content_type),
        None => request,
    };
    request.body(body).send().await.expect("request sent")
}

#[tokio::test]
async fn invalid_wallet_creations_are_rejected_and_write_nothing() {
    let app = spawn_app().await;
    // A registered user (no outbox row of its own): only the body is wrong.
    let user = app.fixture_user().await;
    let token = app.user_token(user).await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            r#"{"name": "#.to_owned(),
            400,
            "malformed-request",
        ),
        ("not an object", "[]".to_owned(), 422, "validation-error"),
        (
            "unknown field",
            r#"{"name":"A","currency":"USD","colour":"red"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "an owner in the body (the owner is the caller)",
            format!(r#"{{"user_id":"{user}","name":"A","currency":"USD"}}"#),
            422,
            "validation-error",
        ),
        (
            "missing currency",
            r#"{"name":"A"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "missing name",
            r#"{"currency":"USD"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "unknown currency",
            r#"{"name":"A","currency":"XYZ"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "lower-case currency",
            r#"{"name":"A","currency":"usd"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "currency without minor unit",
            r#"{"name":"A","currency":"XAU"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "blank name",
            r#"{"name":"  ","currency":"USD"}"#.to_owned(),
            422,
            "validation-error",
        ),
        (
            "name too long",
            format!(r#"{{"name":"{}","currency":"USD"}}"#, "n".repeat(101)),
            422,
            "validation-error",
        ),
    ];
    for (what, body, status, slug) in cases {
        let response = post_wallet(&app, &token, Some("application/json"), body).await;
        assert_eq!(response.status(), status, "{what}");
        assert_problem(response, status, slug).await;
    }

    let valid = r#"{"name":"A","currency":"USD"}"#;
    let no_content_type = post_wallet(&app, &token, None, valid.to_owned()).await;
    assert_problem(no_content_type, 415, "unsupported-media-type").await;

    let huge_name = "x".repeat(70_000);
    let too_large = serde_json::json!({"name": huge_name, "currency": "USD"}).to_string();
    let too_large = post_wallet(&app, &token, Some("application/json"), too_large).await;
    assert_problem(too_large, 413, "payload-too-large").await;

    // A valid token whose principal registered no user has nobody to open a wallet for.
    let unregistered = app.token(&format!("nobody-{}", Uuid::now_v7()), &[]);
    let unknown_user = post_wallet(
        &app,
        &unregistered,
        Some("application/json"),
        valid.to_owned(),
    )
    .await;
    assert_problem(unknown_user, 422, "unknown-user").await;

    assert_eq!(app.wallet_count().await, 0, "no wallet written");
    assert_eq!(app.outbox_rows().await, 0, "no outbox row written");
}

#[tokio::test]
async fn invalid_deposits_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let wallet_id = wallet["id"].as_str().expect("id");
    assert_eq!(app.deposit(wallet_id, "5.00").await.status(), 201);
    let before = balance_and_version(&app, wallet_id).await;
    let outbox_before = app.outbox_rows().await;

    for (amount, slug) in [
        ("10.001", "amount-not-representable"),
        ("10.500", "amount-not-representable"),
    ] {
        let response = app.deposit(wallet_id, amount).await;
        assert_problem(response, 422, slug).await;
    }
    for amount in [
        "0",
        "0.00",
        "-5",
        "-0.01",
        "010",
        "10.00001",
        "abc",
        "1e2",
        "NaN",
        " 10",
        "10 ",
        "+10",
        "",
        "1,5",
        "92233720368547758.08",
        "99999999999999999999",
    ] {
        let response = app.deposit(wallet_id, amount).await;
        assert_eq!(response.status(), 422, "amount {amount:?}");
        assert_problem(response, 422, "validation-error").await;
    }
    for body in [
        serde_json::json!({"amount": 10.5}),
        serde_json::json!({"amount": null}),
        serde_json::json!({}),
        serde_json::json!({"amount": "1.00", "note": "extra"}),
    ] {
        let response = app
            .post_json(&format!("/v1/wallets/{wallet_id}/deposits"), &body)
            .await;
        assert_problem(response, 422, "validation-error").await;
    }
    let malformed = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/wallets/{wallet_id}/deposits"),
            None,
        )
        .await
        .header("content-type", "application/json")
        .body("{amount: 1}")
        .send()
        .await
        .expect("request sent");
    assert_problem(malformed, 400, "malformed-request").await;

    assert_eq!(
        balance_and_version(&app, wallet_id).await,
        before,
        "wallet unchanged"
    );
    assert_eq!(
        app.outbox_rows().await,
        outbox_before,
        "no outbox row written"
    );
    let deposits: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transactions")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(deposits, 1, "only the valid deposit is recorded");
}

#[tokio::test]
async fn deposits_to_unknown_or_malformed_wallet_ids_are_404_and_400() {
    let app = spawn_app().await;
    let unknown = Uuid::now_v7();
    let response = app.deposit(&unknown.to_string(), "1.00").await;
    let problem = assert_problem(response, 404, "not-found").await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains(&unknown.to_string())
    );

    assert_problem(
        app.deposit("not-a-uuid", "1.00").await,
        400,
        "malformed-request",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/wallets/{unknown}")).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.get("/v1/wallets/123").await, 400, "malformed-request").await;
    assert_problem(app.get("/v1/nothing-here").await, 404, "no-such-route").await;
    let delete = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/wallets/{unknown}"),
            None,
        )
        .await
        .send()
        .await
        .expect("request sent");
    assert_problem(delete, 405, "method-not-allowed").await;
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn amounts_follow_each_currency_scale() {
    let app = spawn_app().await;
    let yen = app.create_wallet("JPY").await;
    let yen_id = yen["id"].as_str().expect("id");
    assert_eq!(yen["balance"], "0");
    let ok = app.deposit(yen_id, "10").await;
    assert_eq!(ok.status(), 201);
    let deposit: serde_json::Value = ok.json().await.expect("JSON");
    assert_eq!(deposit["amount"], "10");
    assert_eq!(deposit["balance_after"], "10");
    assert_problem(
        app.deposit(yen_id, "10.5").await,
        422,
        "amount-not-representable",
    )
    .await;

    let dinar = app.create_wallet("BHD").await;
    let dinar_id = dinar["id"].as_str().expect("id");
    assert_eq!(dinar["balance"], "0.000");
    let ok: serde_json::Value = app
        .deposit(dinar_id, "1.005")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(ok["balance_after"], "1.005");

    let usd = app.create_wallet("USD").await;
    let usd_id = usd["id"].as_str().expect("id");
    for (amount, balance) in [("10.5", "10.50"), ("0.01", "10.51"), ("7", "17.51")] {
        let response: serde_json::Value = app
            .deposit(usd_id, amount)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(response["balance_after"], balance);
    }
    let wallet: serde_json::Value = app
        .get(&format!("/v1/wallets/{usd_id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(wallet["balance"], "17.51");
    assert_eq!(wallet["version"], 4);
}

#[tokio::test]
async fn a_created_wallet_can_be_read_back_at_its_location() {
    let app = spawn_app().await;
    let user = app.create_user().await;
    let response = app
        .post_json(
            "/v1/wallets",
            &serde_json::json!({"user_id": user, "name": "Rainy day", "currency": "GBP"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let created: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        location,
        format!("/v1/wallets/{}", created["id"].as_str().expect("id"))
    );
    assert_eq!(created["user_id"], user.to_string());
    assert_eq!(created["name"], "Rainy day");
    assert_eq!(created["currency"], "GBP");
    assert_eq!(created["balance"], "0.00");
    assert_eq!(created["version"], 1);
    assert!(created["created_at"].is_string());

    let fetched: serde_json::Value = app.get(&location).await.json().await.expect("JSON");
    assert_eq!(fetched, created);
}
