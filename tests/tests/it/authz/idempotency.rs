//! Idempotency keys are the caller's, and bound to the request they were first used with
//! (method, concrete path, body): a key is never answered with another resource's reply.

use serde_json::json;
use wallet_hub_tests::spawn_app;

use super::snapshot::{Snapshot, refused};
use super::world::{Call, World, admin_token, processor_token, wallet};

fn deposit(wallet: &str, amount: &str) -> Call {
    Call::post(&format!("/v1/wallets/{wallet}/deposits")).json(json!({"amount": amount}))
}

#[tokio::test]
async fn a_key_used_for_a_deposit_to_one_wallet_is_refused_for_another_and_credits_nothing() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let processor = processor_token(&app);

    let first = deposit(&world.funded, "5.00")
        .bearer(&processor)
        .idempotency_key("deposit-key-1")
        .send(&app)
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    let second = refused(
        &app,
        deposit(&world.bobs, "5.00")
            .bearer(&processor)
            .idempotency_key("deposit-key-1"),
        422,
        "idempotency-key-reuse",
    )
    .await;

    assert!(
        second.header("idempotent-replayed").is_empty(),
        "not a replay"
    );
    assert_eq!(wallet(&app, &world.bobs).await["balance"], "0.00");
    assert_eq!(wallet(&app, &world.funded).await["balance"], "15.00");
}

#[tokio::test]
async fn two_principals_using_the_same_key_string_each_get_their_own_deposit() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let processors = [
        app.token("processor-eu", &["wallets:deposit"]),
        app.token("processor-us", &["wallets:deposit"]),
    ];

    let mut ids = Vec::new();
    for processor in &processors {
        let reply = deposit(&world.funded, "5.00")
            .bearer(processor)
            .idempotency_key("shared-key")
            .send(&app)
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        assert!(
            reply.header("idempotent-replayed").is_empty(),
            "not a replay: {reply:?}"
        );
        ids.push(reply.body["id"].clone());
    }

    assert_ne!(ids[0], ids[1], "two deposits, two transactions");
    assert_eq!(wallet(&app, &world.funded).await["balance"], "20.00");
}

#[tokio::test]
async fn a_key_used_to_freeze_one_wallet_is_refused_for_another_which_stays_active() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let admin = admin_token(&app);
    let freeze = |wallet: &str| {
        Call::post(&format!("/v1/wallets/{wallet}/freeze"))
            .bearer(&admin)
            .idempotency_key("freeze-key-1")
    };

    let first = freeze(&world.funded).send(&app).await;
    assert_eq!(
        (first.status, &first.body["status"]),
        (200, &json!("frozen"))
    );
    refused(&app, freeze(&world.bobs), 422, "idempotency-key-reuse").await;

    assert_eq!(wallet(&app, &world.bobs).await["status"], "active");
    assert_eq!(wallet(&app, &world.funded).await["status"], "frozen");
}

#[tokio::test]
async fn a_retry_of_the_identical_request_replays_the_first_answer_and_changes_nothing() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let withdrawal = Call::post(&format!("/v1/wallets/{}/withdrawals", world.funded))
        .bearer(&world.alice.token)
        .json(json!({"amount": "3.00"}))
        .idempotency_key("withdrawal-key-1");

    let first = withdrawal.send(&app).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert!(first.header("idempotent-replayed").is_empty());
    let before = Snapshot::take(&app.pool).await;
    let retry = withdrawal.send(&app).await;

    assert_eq!(retry.status, 201);
    assert_eq!(retry.header("idempotent-replayed"), "true");
    assert_eq!(retry.body, first.body, "the first answer, verbatim");
    assert_eq!(Snapshot::take(&app.pool).await, before);
    assert_eq!(wallet(&app, &world.funded).await["balance"], "7.00");
}
