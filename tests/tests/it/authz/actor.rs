//! "Who moved this money" has an answer: the acting principal (issuer and subject) is on
//! every history item, on every status change and on every event published to Kafka.

use auth::dev::DevIssuer;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};
use wallet_hub_tests::{read_records, spawn_app};

use super::world::{ADMIN, Call, PROCESSOR, World, admin_token};

fn actor(subject: &str) -> Value {
    json!({"issuer": DevIssuer::ISSUER, "subject": subject})
}

fn payload(record: &OwnedMessage) -> Value {
    serde_json::from_slice(record.payload().expect("payload")).expect("JSON event")
}

#[tokio::test]
async fn history_and_kafka_events_name_the_principal_that_acted() {
    let app = spawn_app().await;
    // The payment processor deposited 10.00 into Alice's funded wallet.
    let world = World::build(&app).await;
    let withdrawal = Call::post(&format!("/v1/wallets/{}/withdrawals", world.funded))
        .bearer(&world.alice.token)
        .json(json!({"amount": "4.00"}))
        .send(&app)
        .await;
    assert_eq!(withdrawal.status, 201, "{withdrawal:?}");
    let freeze = Call::post(&format!("/v1/wallets/{}/freeze", world.funded))
        .bearer(&admin_token(&app))
        .send(&app)
        .await;
    assert_eq!(freeze.status, 200, "{freeze:?}");

    let history = Call::get(&format!("/v1/wallets/{}/transactions", world.funded))
        .bearer(&world.alice.token)
        .send(&app)
        .await;
    let items = history.body["items"].as_array().expect("history items");
    let seen: Vec<(&Value, &Value)> = items.iter().map(|i| (&i["kind"], &i["actor"])).collect();
    assert_eq!(
        seen,
        [
            (&json!("withdrawal"), &actor(&world.alice.subject)),
            (&json!("deposit"), &actor(PROCESSOR)),
        ],
        "newest first, each with its actor"
    );
    let status_actor: (String, String) = sqlx::query_as(
        "SELECT actor_issuer, actor_subject FROM wallet_status_changes WHERE wallet_id = $1",
    )
    .bind(world.funded.parse::<uuid::Uuid>().expect("uuid"))
    .fetch_one(&app.pool)
    .await
    .expect("the freeze is recorded");
    assert_eq!(
        status_actor,
        (DevIssuer::ISSUER.to_owned(), ADMIN.to_owned())
    );

    let brokers = &app.settings.kafka.brokers;
    let topics = &app.topics;
    let added = read_records(brokers, &topics.funds_added, 1).await;
    let withdrawn = read_records(brokers, &topics.funds_withdrawn, 1).await;
    let status = read_records(brokers, &topics.wallet_status, 1).await;
    assert_eq!(payload(&added[0])["actor"], actor(PROCESSOR));
    assert_eq!(payload(&withdrawn[0])["actor"], actor(&world.alice.subject));
    assert_eq!(payload(&status[0])["actor"], actor(ADMIN));
    // Registration and wallet creation name the user's own principal.
    let users = read_records(brokers, &topics.user_created, 2).await;
    let wallets = read_records(brokers, &topics.wallet_created, 3).await;
    for record in users.iter().chain(&wallets) {
        let event = payload(record);
        let subject = event["actor"]["subject"].as_str().unwrap_or_default();
        assert!(
            [&world.alice.subject, &world.bob.subject].contains(&&subject.to_owned())
                && event["actor"]["issuer"] == DevIssuer::ISSUER,
            "registered and opened by the user itself: {event}"
        );
    }
}
