//! The wallet API beyond deposits: users, withdrawals, transfers, lifecycle, history, and
//! the ledger rules the database enforces on its own.

use uuid::Uuid;

use wallet_hub_tests::{TestApp, spawn_app};

async fn problem_type(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("problem JSON");
    let type_uri = body["type"].as_str().expect("type").to_owned();
    type_uri.rsplit('/').next().expect("slug").to_owned()
}

async fn balance(app: &TestApp, wallet: &str) -> String {
    let body: serde_json::Value = app
        .get(&format!("/v1/wallets/{wallet}"))
        .await
        .json()
        .await
        .expect("JSON");
    body["balance"].as_str().expect("balance").to_owned()
}

async fn post_empty(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(reqwest::Method::POST, path, None)
        .await
        .send()
        .await
        .expect("request sent")
}

/// Every ledger transaction sums to zero and every wallet's balance is its latest
/// running balance, which is the sum of its entries.
async fn assert_ledger_consistent(app: &TestApp) {
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries GROUP BY transaction_id HAVING sum(amount_minor) <> 0) t",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(unbalanced, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wallets w WHERE w.balance_minor <> \
         COALESCE((SELECT sum(amount_minor) FROM ledger_entries e WHERE e.wallet_id = w.id), 0) \
         OR w.balance_minor < 0",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn users_have_unique_case_insensitive_emails_and_list_their_wallets() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/v1/users",
            &serde_json::json!({"email": "Ada.Lovelace@Example.com", "name": "Ada"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let user: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(user["email"], "Ada.Lovelace@Example.com");
    assert_eq!(
        app.get(&location)
            .await
            .json::<serde_json::Value>()
            .await
            .expect("JSON"),
        user
    );

    let again = app
        .post_json(
            "/v1/users",
            &serde_json::json!({"email": "ada.lovelace@example.COM", "name": "Other"}),
        )
        .await;
    assert_eq!(problem_type(again, 409).await, "email-taken");
    for bad in ["not-an-email", "a@b", "", "a b@example.com"] {
        let response = app
            .post_json("/v1/users", &serde_json::json!({"email": bad, "name": "X"}))
            .await;
        assert_eq!(
            problem_type(response, 422).await,
            "validation-error",
            "{bad:?}"
        );
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 1);

    let user_id: Uuid = user["id"].as_str().expect("id").parse().expect("uuid");
    let usd = app.create_wallet_for(user_id, "USD").await;
    let eur = app.create_wallet_for(user_id, "EUR").await;
    let wallets: Vec<serde_json::Value> = app.list(&format!("/v1/users/{user_id}/wallets")).await;
    assert_eq!(wallets, vec![usd, eur]);
    assert_eq!(
        problem_type(app.get(&format!("/v1/users/{}", Uuid::now_v7())).await, 404).await,
        "not-found"
    );
    assert_eq!(
        problem_type(
            app.get(&format!("/v1/users/{}/wallets", Uuid::now_v7()))
                .await,
            404
        )
        .await,
        "not-found"
    );
}

#[tokio::test]
async fn withdrawals_never_go_below_zero() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    assert_eq!(app.deposit(id, "10.00").await.status(), 201);
    let path = format!("/v1/wallets/{id}/withdrawals");
    let ok = app
        .post_json(&path, &serde_json::json!({"amount": "2.50"}))
        .await;
    assert_eq!(ok.status(), 201);
    let body: serde_json::Value = ok.json().await.expect("JSON");
    assert_eq!(body["balance_after"], "7.50");
    let outbox_before = app.outbox_rows().await;
    let too_much = app
        .post_json(&path, &serde_json::json!({"amount": "7.51"}))
        .await;
    assert_eq!(problem_type(too_much, 422).await, "insufficient-funds");
    for (amount, slug) in [
        ("0", "validation-error"),
        ("-1", "validation-error"),
        ("x", "validation-error"),
        ("1.001", "amount-not-representable"),
    ] {
        let response = app
            .post_json(&path, &serde_json::json!({"amount": amount}))
            .await;
        assert_eq!(problem_type(response, 422).await, slug, "{amount}");
    }
    assert_eq!(balance(&app, id).await, "7.50");
    assert_eq!(
        app.outbox_rows().await,
        outbox_before,
        "refusals write no event"
    );
    let all = app
        .post_json(&path, &serde_json::json!({"amount": "7.50"}))
        .await;
    assert_eq!(all.status(), 201);
    assert_eq!(balance(&app, id).await, "0.00");
    assert_ledger_consistent(&app).await;
}

#[tokio::test]
async fn frozen_and_closed_wallets_move_no_money_and_close_needs_a_zero_balance() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    assert_eq!(app.deposit(id, "3.00").await.status(), 201);

    let frozen = post_empty(&app, &format!("/v1/wallets/{id}/freeze")).await;
    assert_eq!(frozen.status(), 200);
    let body: serde_json::Value = frozen.json().await.expect("JSON");
    assert_eq!(body["status"], "frozen");
    let outbox_before = app.outbox_rows().await;
    assert_eq!(
        problem_type(app.deposit(id, "1.00").await, 409).await,
        "wallet-not-active"
    );
    let withdraw = app
        .post_json(
            &format!("/v1/wallets/{id}/withdrawals"),
            &serde_json::json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(problem_type(withdraw, 409).await, "wallet-not-active");
    assert_eq!(
        problem_type(
            post_empty(&app, &format!("/v1/wallets/{id}/freeze")).await,
            409
        )
        .await,
        "invalid-status-transition"
    );
    assert_eq!(app.outbox_rows().await, outbox_before);

    assert_eq!(
        post_empty(&app, &format!("/v1/wallets/{id}/unfreeze"))
            .await
            .status(),
        200
    );
    assert_eq!(
        problem_type(
            post_empty(&app, &format!("/v1/wallets/{id}/close")).await,
            409
        )
        .await,
        "balance-not-zero"
    );
    let withdraw = app
        .post_json(
            &format!("/v1/wallets/{id}/withdrawals"),
            &serde_json::json!({"amount": "3.00"}),
        )
        .await;
    assert_eq!(withdraw.status(), 201);
    let closed: serde_json::Value = post_empty(&app, &format!("/v1/wallets/{id}/close"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(closed["status"], "closed");
    assert_eq!(
        problem_type(app.deposit(id, "1.00").await, 409).await,
        "wallet-not-active"
    );
    assert_eq!(
        problem_type(
            post_empty(&app, &format!("/v1/wallets/{id}/unfreeze")).await,
            409
        )
        .await,
        "invalid-status-transition"
    );
    assert_eq!(
        problem_type(
            post_empty(&app, &format!("/v1/wallets/{}/freeze", Uuid::now_v7())).await,
            404
        )
        .await,
        "not-found"
    );
    let statuses: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM outbox WHERE event_type = 'WalletStatusChanged' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    let changes: Vec<(String, String)> = statuses
        .iter()
        .map(|(_, p)| {
            (
                p["from"].as_str().unwrap_or("").to_owned(),
                p["to"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("active".to_owned(), "frozen".to_owned()),
            ("frozen".to_owned(), "active".to_owned()),
            ("active".to_owned(), "closed".to_owned())
        ]
    );
}

#[tokio::test]
async fn transfers_move_money_atomically_between_active_wallets_of_one_currency() {
    let app = spawn_app().await;
    let a = app.create_wallet("USD").await;
    let b = app.create_wallet("USD").await;
    let eur = app.create_wallet("EUR").await;
    let (a, b, eur) = (
        a["id"].as_str().expect("id").to_owned(),
        b["id"].as_str().expect("id").to_owned(),
        eur["id"].as_str().expect("id").to_owned(),
    );
    assert_eq!(app.deposit(&a, "10.00").await.status(), 201);
    let transfer = |from: &str, to: &str, amount: &str| serde_json::json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount});

    let ok = app
        .post_json("/v1/transfers", &transfer(&a, &b, "4.25"))
        .await;
    assert_eq!(ok.status(), 201);
    let body: serde_json::Value = ok.json().await.expect("JSON");
    assert_eq!(body["from_balance_after"], "5.75");
    assert_eq!(body["to_balance_after"], "4.25");
    let transfer_id = body["id"].as_str().expect("id").to_owned();

    let outbox_before = app.outbox_rows().await;
    let cases = [
        (transfer(&a, &b, "5.76"), 422, "insufficient-funds"),
        (transfer(&a, &eur, "1.00"), 422, "currency-mismatch"),
        (transfer(&a, &a, "1.00"), 422, "same-wallet"),
        (transfer(&a, &b, "0"), 422, "validation-error"),
        (transfer(&a, &b, "1.001"), 422, "amount-not-representable"),
        (
            transfer(&a, &Uuid::now_v7().to_string(), "1.00"),
            404,
            "not-found",
        ),
    ];
    for (body, status, slug) in cases {
        let response = app.post_json("/v1/transfers", &body).await;
        assert_eq!(problem_type(response, status).await, slug, "{body}");
    }
    assert_eq!(
        post_empty(&app, &format!("/v1/wallets/{b}/freeze"))
            .await
            .status(),
        200
    );
    let outbox_after_freeze = app.outbox_rows().await;
    let to_frozen = app
        .post_json("/v1/transfers", &transfer(&a, &b, "1.00"))
        .await;
    assert_eq!(problem_type(to_frozen, 409).await, "wallet-not-active");
    assert_eq!(app.outbox_rows().await, outbox_after_freeze);
    assert_eq!(
        outbox_after_freeze,
        outbox_before + 1,
        "only the freeze was written"
    );
    assert_eq!(balance(&app, &a).await, "5.75");
    assert_eq!(balance(&app, &b).await, "4.25");

    let (event_type, key, payload): (String, Uuid, serde_json::Value) = sqlx::query_as(
        "SELECT event_type, aggregate_id, payload FROM outbox WHERE event_type = 'FundsTransferred'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("one transfer event");
    assert_eq!(event_type, "FundsTransferred");
    assert_eq!(key.to_string(), a, "keyed by the source wallet");
    assert_eq!(payload["from_wallet_id"], a.as_str());
    assert_eq!(payload["to_wallet_id"], b.as_str());
    assert_eq!(payload["transfer_id"], transfer_id.as_str());
    assert_ledger_consistent(&app).await;
}

#[tokio::test]
async fn history_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let a = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let b = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for amount in ["1.00", "2.00", "3.00"] {
        assert_eq!(app.deposit(&a, amount).await.status(), 201);
    }
    let withdraw = app
        .post_json(
            &format!("/v1/wallets/{a}/withdrawals"),
            &serde_json::json!({"amount": "0.50"}),
        )
        .await;
    assert_eq!(withdraw.status(), 201);
    let transfer = app
        .post_json(
            "/v1/transfers",
            &serde_json::json!({"from_wallet_id": a, "to_wallet_id": b, "amount": "1.25"}),
        )
        .await;
    assert_eq!(transfer.status(), 201);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/wallets/{a}/transactions?limit=2&cursor={c}"),
            None => format!("/v1/wallets/{a}/transactions?limit=2"),
        };
        let page: serde_json::Value = app.get(&path).await.json().await.expect("JSON");
        pages += 1;
        for item in page["items"].as_array().expect("items") {
            seen.push((
                item["kind"].as_str().expect("kind").to_owned(),
                item["amount"].as_str().expect("amount").to_owned(),
                item["balance_after"].as_str().expect("balance").to_owned(),
                item["counterparty_wallet_id"].as_str().map(str::to_owned),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected = [
        ("transfer", "-1.25", "4.25", Some(b.clone())),
        ("withdrawal", "-0.50", "5.50", None),
        ("deposit", "3.00", "6.00", None),
        ("deposit", "2.00", "3.00", None),
        ("deposit", "1.00", "1.00", None),
    ];
    let expected: Vec<(String, String, String, Option<String>)> = expected
        .into_iter()
        .map(|(k, a, b, c)| (k.to_owned(), a.to_owned(), b.to_owned(), c))
        .collect();
    assert_eq!(seen, expected);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=abc",
        "cursor=-5",
        "colour=red",
    ] {
        let response = app
            .get(&format!("/v1/wallets/{a}/transactions?{bad}"))
            .await;
        assert_eq!(
            problem_type(response, 400).await,
            "malformed-request",
            "{bad}"
        );
    }
    let unknown = app
        .get(&format!("/v1/wallets/{}/transactions", Uuid::now_v7()))
        .await;
    assert_eq!(problem_type(unknown, 404).await, "not-found");
}

#[tokio::test]
async fn the_database_refuses_a_balance_that_differs_from_the_ledger() {
    let app = spawn_app().await;
    let a = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.deposit(&a, "1.00").await.status(), 201);
    let id: Uuid = a.parse().expect("uuid");

    let tampered =
        sqlx::query("UPDATE wallets SET balance_minor = balance_minor + 1 WHERE id = $1")
            .bind(id)
            .execute(&app.pool)
            .await;
    let error = tampered.expect_err("balance change without ledger entries is refused");
    assert!(
        error.to_string().contains("differs from its ledger"),
        "{error}"
    );

    let unbalanced = async {
        let mut tx = app.pool.begin().await?;
        let tx_id = Uuid::now_v7();
        sqlx::query("INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at) VALUES ($1, 'deposit', 'USD', 5, 'x', now())")
            .bind(tx_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at) VALUES ($1, NULL, 'USD', -5, NULL, now())")
            .bind(tx_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    let error = unbalanced.expect_err("entries must sum to zero");
    assert!(error.to_string().contains("does not balance"), "{error}");
    assert_eq!(balance(&app, &a).await, "1.00");
}
