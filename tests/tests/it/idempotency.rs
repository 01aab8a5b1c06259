//! `Idempotency-Key` with Stripe's semantics, through the typed client.

use std::time::Duration;

use domain::{WalletId, WalletStatus};
use uuid::Uuid;
use wallet_hub_client::{Amount, Client, Error, IdempotencyKey, Movement, Reply};

use wallet_hub_tests::{TestApp, spawn_app};

fn key(key: &str) -> IdempotencyKey {
    IdempotencyKey::new(key).expect("a valid key")
}

fn amount(value: &str) -> Amount {
    Amount::new(value)
}

/// The problem of a refused call: its slug and whether it was a replayed answer.
fn refused<T: std::fmt::Debug>(outcome: Result<Reply<T>, Error>, status: u16) -> (String, bool) {
    match outcome.expect_err("the call is refused") {
        Error::Problem(response) => {
            assert_eq!(response.problem.status, status, "{}", response.problem);
            (response.problem.slug().to_owned(), response.replayed)
        }
        other => panic!("a problem, not {other:?}"),
    }
}

async fn deposits(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE kind = 'deposit'")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn new_wallet(app: &TestApp) -> WalletId {
    app.new_wallet("USD").await.id
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_answer_and_does_nothing() {
    let app = spawn_app().await;
    let id = new_wallet(&app).await;
    let operator = app.operator();
    let first = operator
        .deposit(id, &amount("5.00"), Some(&key("key-1")))
        .await
        .expect("deposit");
    let outbox = app.outbox_rows().await;
    let second = operator
        .deposit(id, &amount("5.00"), Some(&key("key-1")))
        .await
        .expect("replayed deposit");
    assert_eq!((first.status.as_u16(), first.replayed), (201, false));
    assert_eq!((second.status.as_u16(), second.replayed), (201, true));
    assert_eq!(second.body, first.body, "same body, same deposit id");
    assert_eq!(deposits(&app).await, 1);
    assert_eq!(app.outbox_rows().await, outbox, "no second event");

    let other = operator
        .deposit(id, &amount("6.00"), Some(&key("key-1")))
        .await;
    assert_eq!(refused(other, 422).0, "idempotency-key-reuse");

    // Keys are the caller's: the owner's withdrawal and another payment processor's
    // deposit use the same key string as keys of their own.
    let withdrawal = app
        .as_owner(id)
        .await
        .withdraw(id, &amount("1.00"), Some(&key("key-1")))
        .await
        .expect("the owner's own key");
    assert_eq!(
        (withdrawal.status.as_u16(), withdrawal.replayed),
        (201, false)
    );
    let other_caller = app
        .api
        .with_token(app.token("another-payment-processor", &["wallets:deposit"]))
        .deposit(id, &amount("5.00"), Some(&key("key-1")))
        .await
        .expect("another caller's own key");
    assert_eq!(
        (other_caller.status.as_u16(), other_caller.replayed),
        (201, false)
    );
    assert_eq!(deposits(&app).await, 2);
}

#[tokio::test]
async fn refused_commands_are_replayed_but_invalid_requests_are_not_stored() {
    let app = spawn_app().await;
    let id = new_wallet(&app).await;
    let owner = app.as_owner(id).await;
    let refusal = owner
        .withdraw(id, &amount("1.00"), Some(&key("w-1")))
        .await
        .expect_err("nothing to withdraw");
    assert_eq!(
        refusal.problem().map(|p| (p.status, p.slug())),
        Some((422, "insufficient-funds"))
    );
    app.operator()
        .deposit(id, &amount("5.00"), None)
        .await
        .expect("deposit");
    let replay = owner
        .withdraw(id, &amount("1.00"), Some(&key("w-1")))
        .await
        .expect_err("the stored answer, not a new attempt");
    match (&refusal, &replay) {
        (Error::Problem(first), Error::Problem(again)) => {
            assert!(!first.replayed);
            assert!(again.replayed, "Idempotent-Replayed: true");
            assert_eq!(again.problem, first.problem);
        }
        other => panic!("two problems, not {other:?}"),
    }

    let invalid = owner.withdraw(id, &amount("abc"), Some(&key("w-2"))).await;
    assert_eq!(
        refused(invalid, 422),
        ("validation-error".to_owned(), false)
    );
    let valid = owner
        .withdraw(id, &amount("1.00"), Some(&key("w-2")))
        .await
        .expect("a request that failed validation did not take the key");
    assert_eq!(valid.status, 201);

    let ok_key = "k".repeat(IdempotencyKey::MAX_LEN);
    owner
        .withdraw(id, &amount("1.00"), Some(&key(&ok_key)))
        .await
        .expect("the longest key");
    // A key the client refuses to send, sent raw: the server refuses it too.
    let long_key = "k".repeat(IdempotencyKey::MAX_LEN + 1);
    assert!(IdempotencyKey::new(long_key.as_str()).is_err());
    let too_long = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/wallets/{id}/withdrawals"),
            Some(&serde_json::json!({"amount": "1.00"})),
        )
        .await
        .header("idempotency-key", long_key)
        .send()
        .await
        .expect("request sent");
    assert_eq!(too_long.status(), 400);
}

#[tokio::test]
async fn a_retry_while_the_first_request_is_still_running_gets_409() {
    let app = spawn_app().await;
    let id = new_wallet(&app).await;
    // Hold the wallet's row lock so the first request stops inside its transaction.
    let mut blocker = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE")
        .bind(Uuid::from(id))
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let operator = app.operator();
    let first = {
        let operator: Client = operator.clone();
        tokio::spawn(async move {
            operator
                .deposit(id, &amount("2.00"), Some(&key("slow")))
                .await
                .map(|reply| reply.status)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let retry = operator
        .deposit(id, &amount("2.00"), Some(&key("slow")))
        .await;
    assert_eq!(refused(retry, 409).0, "idempotency-in-flight");

    blocker.rollback().await.expect("release");
    assert_eq!(
        first.await.expect("first request").expect("first deposit"),
        201
    );
    let later = operator
        .deposit(id, &amount("2.00"), Some(&key("slow")))
        .await
        .expect("the stored answer");
    assert_eq!((later.status.as_u16(), later.replayed), (201, true));
    assert_eq!(deposits(&app).await, 1);
}

#[tokio::test]
async fn two_concurrent_requests_with_one_key_take_effect_once() {
    let app = spawn_app().await;
    let id = new_wallet(&app).await;
    let operator = app.operator();
    let (twice, three) = (key("twice"), amount("3.00"));
    let deposit = || operator.deposit(id, &three, Some(&twice));
    let (a, b) = tokio::join!(deposit(), deposit());
    assert_eq!(deposits(&app).await, 1);
    let outcome = |result: &Result<Reply<Movement>, Error>| match result {
        Ok(reply) => reply.status.as_u16(),
        Err(error) => error.status().map_or(0, |s| s.as_u16()),
    };
    for result in [&a, &b] {
        let status = outcome(result);
        assert!(status == 201 || status == 409, "{result:?}");
    }
    if let (Ok(a), Ok(b)) = (&a, &b) {
        assert_eq!(a.body, b.body, "the second got the first's answer");
    }
    assert!(a.is_ok() || b.is_ok());
    let wallet = operator.get_wallet(id).await.expect("wallet").body;
    assert_eq!(wallet.balance, "3.00");
}

#[tokio::test]
async fn a_key_is_stored_with_its_concrete_path_and_refused_on_another_path() {
    let app = spawn_app().await;
    let id = new_wallet(&app).await;
    let operator = app.operator();
    operator
        .deposit(id, &amount("5.00"), Some(&key("key-1")))
        .await
        .expect("deposit");
    let reused = operator.freeze(id, Some(&key("key-1"))).await;
    assert_eq!(
        refused(reused, 422).0,
        "idempotency-key-reuse",
        "the same caller's key on another path"
    );
    let wallet = operator.get_wallet(id).await.expect("wallet").body;
    assert_eq!(
        wallet.status,
        WalletStatus::Active,
        "the refused freeze changed nothing"
    );
    let frozen = operator
        .freeze(id, Some(&key("key-2")))
        .await
        .expect("frozen");
    assert_eq!(frozen.status, 200);
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
