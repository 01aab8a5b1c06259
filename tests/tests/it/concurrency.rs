//! Concurrent requests on the same wallets: no lost update, no overdraft, no deadlock
//! reaching the client. Each runs with the batching writer (the default) and with one
//! transaction per request (`api.write_batching = false`).

use futures::future::join_all;

use wallet_hub_tests::{TestApp, spawn_app_with};

async fn app(batching: bool) -> TestApp {
    spawn_app_with(|settings| settings.api.write_batching = batching).await
}

#[tokio::test]
async fn fifty_parallel_withdrawals_of_ten_from_two_hundred_five_leave_five() {
    fifty_parallel_withdrawals(app(true).await).await;
}

#[tokio::test]
async fn fifty_parallel_withdrawals_leave_five_one_transaction_per_request() {
    fifty_parallel_withdrawals(app(false).await).await;
}

#[tokio::test]
async fn opposite_transfers_at_the_same_time_neither_deadlock_nor_lose_money() {
    opposite_transfers(app(true).await).await;
}

#[tokio::test]
async fn opposite_transfers_neither_deadlock_nor_lose_money_one_transaction_per_request() {
    opposite_transfers(app(false).await).await;
}

async fn fifty_parallel_withdrawals(app: TestApp) {
    let id = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.deposit(&id, "205.00").await.status(), 201);
    let path = format!("/v1/wallets/{id}/withdrawals");
    let body = serde_json::json!({"amount": "10.00"});
    let mut prepared = Vec::new();
    for _ in 0..50 {
        prepared.push(app.request(reqwest::Method::POST, &path, Some(&body)).await);
    }
    let requests = prepared.into_iter().map(|request| async move {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("JSON");
        (status, body)
    });
    let results = join_all(requests).await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<&serde_json::Value> = results
        .iter()
        .filter(|(s, _)| *s == 422)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok, 20, "{results:?}");
    assert_eq!(refused.len(), 30, "{results:?}");
    assert!(refused.iter().all(|b| {
        b["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/insufficient-funds"))
    }));
    let wallet: serde_json::Value = app
        .get(&format!("/v1/wallets/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(wallet["balance"], "5.00");
    let withdrawals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE kind = 'withdrawal'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(withdrawals, 20);
}

async fn opposite_transfers(app: TestApp) {
    let a = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let b = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.deposit(&a, "100.00").await.status(), 201);
    assert_eq!(app.deposit(&b, "100.00").await.status(), 201);
    let mut prepared = Vec::new();
    for i in 0..60 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let body =
            serde_json::json!({"from_wallet_id": from, "to_wallet_id": to, "amount": "1.00"});
        prepared.push(
            app.request(reqwest::Method::POST, "/v1/transfers", Some(&body))
                .await,
        );
    }
    let requests = prepared.into_iter().map(|request| async move {
        request
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    });
    let statuses = join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let total: i64 = sqlx::query_scalar("SELECT sum(balance_minor)::bigint FROM wallets")
        .fetch_one(&app.pool)
        .await
        .expect("sum");
    assert_eq!(total, 20_000, "transfers conserve money");
    let wallet: serde_json::Value = app
        .get(&format!("/v1/wallets/{a}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(wallet["balance"], "100.00", "30 each way");
}
