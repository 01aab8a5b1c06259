//! The scope table of docs/security.md: deposits need `wallets:deposit`, freeze and
//! unfreeze `wallets:admin`, which reads anything but moves no one's money; a principal
//! registers once and must register before it opens a wallet.

use serde_json::json;
use uuid::Uuid;
use wallet_hub_tests::app::OPERATOR_SCOPES;
use wallet_hub_tests::{TestApp, spawn_app};

use super::snapshot::refused;
use super::world::{
    ADMIN_SCOPE, Call, DEPOSIT_SCOPE, Reply, World, admin_token, processor_token, wallet,
};

/// Sends `call`, which lacks `scope`: 403 `insufficient-scope` naming it in the
/// `WWW-Authenticate` challenge, and nothing changed.
async fn refused_without(app: &TestApp, call: Call, scope: &str) {
    let reply = refused(app, call, 403, "insufficient-scope").await;
    let challenge = reply.challenge();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains(&format!("scope=\"{scope}\"")),
        "WWW-Authenticate names the missing scope: {challenge:?}"
    );
}

#[tokio::test]
async fn a_deposit_needs_the_deposit_scope_whoever_owns_the_wallet() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let deposit = Call::post(&format!("/v1/wallets/{}/deposits", world.funded))
        .json(json!({"amount": "5.00"}));

    for token in [&world.alice.token, &admin_token(&app)] {
        refused_without(&app, deposit.clone().bearer(token), DEPOSIT_SCOPE).await;
    }

    let by_processor = deposit.bearer(&processor_token(&app)).send(&app).await;
    assert_eq!(by_processor.status, 201, "{by_processor:?}");
    assert_eq!(wallet(&app, &world.funded).await["balance"], "15.00");
}

#[tokio::test]
async fn freezing_and_unfreezing_need_the_admin_scope_not_ownership() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let freeze = Call::post(&format!("/v1/wallets/{}/freeze", world.funded));
    let unfreeze = Call::post(&format!("/v1/wallets/{}/unfreeze", world.funded));
    let status = |reply: &Reply| (reply.status, reply.body["status"].clone());

    for token in [&world.alice.token, &processor_token(&app)] {
        refused_without(&app, freeze.clone().bearer(token), ADMIN_SCOPE).await;
    }
    assert_eq!(wallet(&app, &world.funded).await["status"], "active");
    let frozen = freeze.bearer(&admin_token(&app)).send(&app).await;
    assert_eq!(status(&frozen), (200, json!("frozen")));

    refused_without(
        &app,
        unfreeze.clone().bearer(&world.alice.token),
        ADMIN_SCOPE,
    )
    .await;
    assert_eq!(wallet(&app, &world.funded).await["status"], "frozen");
    let active = unfreeze.bearer(&admin_token(&app)).send(&app).await;
    assert_eq!(status(&active), (200, json!("active")));
}

#[tokio::test]
async fn an_admin_reads_any_users_things() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let admin = admin_token(&app);
    let (alice, funded) = (world.alice.id, &world.funded);

    for path in [
        format!("/v1/users/{alice}"),
        format!("/v1/users/{alice}/wallets"),
        format!("/v1/users/{alice}/notifications"),
        format!("/v1/wallets/{funded}"),
        format!("/v1/wallets/{funded}/transactions"),
        format!("/v1/wallets/{funded}/activity"),
    ] {
        let reply = Call::get(&path).bearer(&admin).send(&app).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
    let wallets = Call::get(&format!("/v1/users/{alice}/wallets"))
        .bearer(&admin)
        .send(&app)
        .await;
    assert_eq!(
        wallets.body["items"].as_array().map(Vec::len),
        Some(2),
        "Alice's two wallets"
    );
    let history = Call::get(&format!("/v1/wallets/{funded}/transactions"))
        .bearer(&admin)
        .send(&app)
        .await;
    assert_eq!(history.body["items"][0]["amount"], "10.00");
}

#[tokio::test]
async fn an_admin_cannot_withdraw_from_close_or_transfer_out_of_someone_elses_wallet() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    // Both privileged scopes: neither makes the operator an owner.
    let operator = app.token("operator", &OPERATOR_SCOPES);

    for call in [
        Call::post(&format!("/v1/wallets/{}/withdrawals", world.funded))
            .json(json!({"amount": "1.00"})),
        Call::post(&format!("/v1/wallets/{}/close", world.empty)),
        Call::post("/v1/transfers").json(json!({
            "from_wallet_id": world.funded, "to_wallet_id": world.bobs, "amount": "1.00"
        })),
    ] {
        refused(&app, call.bearer(&operator), 404, "not-found").await;
    }
    assert_eq!(wallet(&app, &world.funded).await["balance"], "10.00");
    assert_eq!(wallet(&app, &world.empty).await["status"], "active");
}

#[tokio::test]
async fn a_principal_that_has_not_registered_cannot_open_a_wallet() {
    let app = spawn_app().await;
    let stranger = app.token(&format!("unregistered-{}", Uuid::now_v7()), &[]);

    let reply = refused(
        &app,
        Call::post("/v1/wallets")
            .bearer(&stranger)
            .json(json!({"name": "Main", "currency": "USD"})),
        422,
        "unknown-user",
    )
    .await;
    assert!(reply.challenge().is_empty(), "authenticated: no challenge");
    assert_eq!(app.wallet_count().await, 0);
}

#[tokio::test]
async fn a_principal_registering_twice_gets_409_and_keeps_one_user() {
    let app = spawn_app().await;
    let subject = format!("twice-{}", Uuid::now_v7());
    let token = app.token(&subject, &[]);
    let register = |email: &str| {
        Call::post("/v1/users")
            .bearer(&token)
            .json(json!({"email": email, "name": "Twice"}))
    };

    let first = register(&format!("{subject}@example.com")).send(&app).await;
    assert_eq!(first.status, 201, "{first:?}");
    refused(
        &app,
        register(&format!("{subject}-again@example.com")),
        409,
        "user-exists",
    )
    .await;

    let users: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE subject = $1")
        .bind(&subject)
        .fetch_all(&app.pool)
        .await
        .expect("users of the subject");
    assert_eq!(
        users,
        [first.body["id"]
            .as_str()
            .expect("id")
            .parse::<Uuid>()
            .expect("uuid")]
    );
}
