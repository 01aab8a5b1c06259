//! The batching writer (`api.write_batching`, on by default): requests that wait together
//! commit in one transaction, each with the answer, rows and events it would get alone.
//!
//! A batch is formed on purpose: with one writer (`api.write_batch_writers = 1`), a first
//! request is held on a row lock the test takes, so the requests sent meanwhile queue
//! behind it, in the order sent, and become the next batch once the lock is released.
//! That they really shared one transaction is read from their ledger rows' `xmin`.

use std::num::NonZeroUsize;
use std::time::Duration;

use uuid::Uuid;

use wallet_hub_tests::{TestApp, spawn_app_with};

/// A status, whether it was a replay, and the body.
type Answer = (u16, Option<String>, serde_json::Value);

async fn one_writer() -> TestApp {
    spawn_app_with(|settings| {
        settings.api.write_batching = true;
        settings.api.write_batch_writers = NonZeroUsize::new(1).expect("non-zero");
    })
    .await
}

fn id_of(wallet: &serde_json::Value) -> String {
    wallet["id"].as_str().expect("id").to_owned()
}

/// Sends `requests` so that they reach the writer together, in this order, and returns
/// their answers in the same order.
async fn in_one_batch(app: &TestApp, requests: Vec<reqwest::RequestBuilder>) -> Vec<Answer> {
    let plug = id_of(&app.create_wallet("USD").await);
    let mut blocker = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE")
        .bind(plug.parse::<Uuid>().expect("uuid"))
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let plugged = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/wallets/{plug}/deposits"),
            Some(&serde_json::json!({"amount": "1.00"})),
        )
        .await;
    let plugged = tokio::spawn(async move { plugged.send().await.expect("sent").status() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent = Vec::new();
    for request in requests {
        sent.push(tokio::spawn(async move {
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            (status, replayed, response.json().await.expect("JSON"))
        }));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.rollback().await.expect("release");
    assert_eq!(plugged.await.expect("plug"), 201);
    let mut answers = Vec::new();
    for handle in sent {
        answers.push(handle.await.expect("request task"));
    }
    answers
}

async fn post(app: &TestApp, path: &str, amount: &str) -> reqwest::RequestBuilder {
    app.request(
        reqwest::Method::POST,
        path,
        Some(&serde_json::json!({"amount": amount})),
    )
    .await
}

/// How many database transactions wrote these ledger transactions.
async fn transactions_writing(app: &TestApp, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM ledger_transactions WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(&app.pool)
    .await
    .expect("xmin")
}

fn transaction_ids(answers: &[&Answer]) -> Vec<Uuid> {
    answers
        .iter()
        .map(|(_, _, body)| body["id"].as_str().expect("id").parse().expect("uuid"))
        .collect()
}

const TRACE_IDS: [&str; 2] = [
    "0af7651916cd43dd8448eb211c80319c",
    "4bf92f3577b34da6a3ce929d0e0e4736",
];

#[tokio::test]
async fn a_batch_applies_rules_in_arrival_order_and_a_refused_request_fails_alone() {
    let app = one_writer().await;
    let user = app.create_user().await;
    let wallet = id_of(&app.create_wallet_for(user, "USD").await);
    let other = id_of(&app.create_wallet_for(user, "USD").await);
    let frozen = id_of(&app.create_wallet_for(user, "USD").await);
    assert_eq!(app.deposit(&wallet, "10.00").await.status(), 201);
    sqlx::query("UPDATE wallets SET status = 'frozen' WHERE id = $1")
        .bind(frozen.parse::<Uuid>().expect("uuid"))
        .execute(&app.pool)
        .await
        .expect("freeze");
    let withdraw = format!("/v1/wallets/{wallet}/withdrawals");
    let deposit = format!("/v1/wallets/{wallet}/deposits");
    let missing = format!("/v1/wallets/{}/deposits", Uuid::now_v7());
    let traced = |request: reqwest::RequestBuilder, trace: &str| {
        request.header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
    };
    let requests = vec![
        traced(post(&app, &withdraw, "6.00").await, TRACE_IDS[0]),
        post(&app, &withdraw, "6.00").await,
        traced(post(&app, &deposit, "5.00").await, TRACE_IDS[1]),
        post(&app, &withdraw, "6.00").await,
        post(&app, &missing, "1.00")
            .await
            .header("idempotency-key", "missing-wallet"),
        post(&app, &format!("/v1/wallets/{frozen}/withdrawals"), "1.00").await,
        post(&app, &deposit, "1.001").await,
        app.request(
            reqwest::Method::POST,
            "/v1/transfers",
            Some(&serde_json::json!({
                "from_wallet_id": wallet, "to_wallet_id": other, "amount": "1.00"
            })),
        )
        .await,
    ];
    let answers = in_one_batch(&app, requests).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses,
        [201, 422, 201, 201, 404, 409, 422, 201],
        "{answers:?}"
    );
    let balances: Vec<&str> = [0, 2, 3]
        .iter()
        .map(|&i| answers[i].2["balance_after"].as_str().expect("balance"))
        .collect();
    assert_eq!(
        balances,
        ["4.00", "9.00", "3.00"],
        "each sees the ones before"
    );
    assert_eq!(answers[7].2["from_balance_after"], "2.00");
    assert!(
        answers[1].2["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/insufficient-funds"))
    );
    assert!(
        answers[5].2["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/wallet-not-active")),
        "{:?}",
        answers[5]
    );

    let accepted = [&answers[0], &answers[2], &answers[3], &answers[7]];
    assert_eq!(
        transactions_writing(&app, &transaction_ids(&accepted)).await,
        1,
        "one database transaction"
    );
    let wallet_json: serde_json::Value = app
        .get(&format!("/v1/wallets/{wallet}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(wallet_json["balance"], "2.00");
    assert_eq!(wallet_json["version"], 6, "created, then five changes");

    // The wallet's ledger and its events, in the order its balance moved.
    let running: Vec<i64> = sqlx::query_scalar(
        "SELECT balance_after_minor FROM ledger_entries WHERE wallet_id = $1 ORDER BY id",
    )
    .bind(wallet.parse::<Uuid>().expect("uuid"))
    .fetch_all(&app.pool)
    .await
    .expect("entries");
    assert_eq!(running, [1000, 400, 900, 300, 200]);
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, traceparent FROM outbox WHERE aggregate_id = $1 ORDER BY id",
    )
    .bind(wallet.parse::<Uuid>().expect("uuid"))
    .fetch_all(&app.pool)
    .await
    .expect("events");
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "WalletCreated",
            "FundsAdded",
            "FundsWithdrawn",
            "FundsAdded",
            "FundsWithdrawn",
            "FundsTransferred"
        ]
    );
    for (event, trace) in [(&events[2], TRACE_IDS[0]), (&events[3], TRACE_IDS[1])] {
        let stored = event.1.as_deref().expect("traceparent stored");
        assert!(
            stored.starts_with(&format!("00-{trace}-")),
            "{stored} continues its own request's trace {trace}"
        );
    }
    // Nothing of the refused requests was written, and the 404's key was given back.
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .expect("keys");
    assert_eq!(keys, 0);
    let frozen_entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE wallet_id = $1")
            .bind(frozen.parse::<Uuid>().expect("uuid"))
            .fetch_one(&app.pool)
            .await
            .expect("entries");
    assert_eq!(frozen_entries, 0);
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_takes_effect_once() {
    let app = one_writer().await;
    let wallet = id_of(&app.create_wallet("USD").await);
    let path = format!("/v1/wallets/{wallet}/deposits");
    let stored_before = post(&app, &path, "7.00")
        .await
        .header("idempotency-key", "before")
        .send()
        .await
        .expect("sent");
    assert_eq!(stored_before.status(), 201);
    let before: serde_json::Value = stored_before.json().await.expect("JSON");
    let keyed = |request: reqwest::RequestBuilder, key: &str| {
        request.header("idempotency-key", key.to_owned())
    };
    let requests = vec![
        keyed(post(&app, &path, "3.00").await, "twice"),
        keyed(post(&app, &path, "3.00").await, "twice"),
        keyed(post(&app, &path, "4.00").await, "twice"),
        keyed(post(&app, &path, "7.00").await, "before"),
        keyed(
            post(&app, &format!("/v1/wallets/{wallet}/withdrawals"), "100.00").await,
            "refused",
        ),
        keyed(
            post(&app, &format!("/v1/wallets/{wallet}/withdrawals"), "100.00").await,
            "refused",
        ),
    ];
    let answers = in_one_batch(&app, requests).await;
    let outcome: Vec<(u16, Option<&str>)> = answers.iter().map(|a| (a.0, a.1.as_deref())).collect();
    assert_eq!(
        outcome,
        [
            (201, None),
            (201, Some("true")),
            (422, None),
            (201, Some("true")),
            (422, None),
            (422, Some("true")),
        ],
        "{answers:?}"
    );
    assert_eq!(answers[1].2, answers[0].2, "the first's answer, replayed");
    assert!(
        answers[2].2["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/idempotency-key-reuse"))
    );
    assert_eq!(answers[3].2, before, "a key stored before is a replay");
    assert_eq!(
        answers[5].2, answers[4].2,
        "a refusal is stored and replayed"
    );
    let deposits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE kind = 'deposit'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(deposits, 3, "the plug's, 'before' and one 'twice'");
    let balance: serde_json::Value = app
        .get(&format!("/v1/wallets/{wallet}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(balance["balance"], "10.00");
}

#[tokio::test]
async fn a_database_error_in_a_batch_falls_back_to_one_transaction_per_request() {
    let app = one_writer().await;
    let wallet = id_of(&app.create_wallet("USD").await);
    // A fault only the database knows about: ledger transactions of 13.13 fail.
    for statement in [
        "CREATE FUNCTION refuse_1313() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.amount_minor = 1313 THEN RAISE EXCEPTION 'injected fault'; END IF; \
         RETURN NEW; END $$",
        "CREATE TRIGGER refuse_1313 BEFORE INSERT ON ledger_transactions \
         FOR EACH ROW EXECUTE FUNCTION refuse_1313()",
    ] {
        sqlx::query(statement)
            .execute(&app.pool)
            .await
            .expect("fault installed");
    }
    let path = format!("/v1/wallets/{wallet}/deposits");
    let requests = vec![
        post(&app, &path, "1.00").await,
        post(&app, &path, "13.13").await,
        post(&app, &path, "2.00").await,
    ];
    let answers = in_one_batch(&app, requests).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [201, 500, 201], "{answers:?}");
    let detail = answers[1].2.to_string();
    assert!(
        !detail.contains("injected fault"),
        "a 500 does not leak: {detail}"
    );
    assert_eq!(
        transactions_writing(&app, &transaction_ids(&[&answers[0], &answers[2]])).await,
        2,
        "each in a transaction of its own"
    );
    let balance: serde_json::Value = app
        .get(&format!("/v1/wallets/{wallet}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(balance["balance"], "3.00", "1.00 and 2.00, not 13.13");
}
