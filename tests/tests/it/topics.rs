//! Topic provisioning at startup: missing topics are created as `[topics]` says, existing
//! ones are checked (one warning per topic naming each difference, nothing changed), and a
//! service started on topics that do not exist yet runs without the brokers' auto-creation.

use std::collections::BTreeMap;

use domain::WalletId;
use kafka::topics::{Difference, TopicSpec, ensure_topics};
use tracing_subscriber::filter::LevelFilter;
use uuid::Uuid;
use wallet_hub_client::{CreateWallet, PageRequest};

use wallet_hub_tests::logs::Captured;
use wallet_hub_tests::{create_topics, eventually, start, test_settings};

fn spec(partitions: i32, retention_ms: &str) -> TopicSpec {
    TopicSpec {
        partitions,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_owned(), retention_ms.to_owned())]),
    }
}

#[tokio::test]
async fn an_existing_topic_that_differs_from_the_settings_is_reported_and_left_as_it_is() {
    let (settings, _) = test_settings().await;
    let suffix = Uuid::now_v7().simple().to_string();
    // Made by someone else: 3 partitions, the brokers' default retention.
    let theirs = format!("provision-theirs-{suffix}");
    create_topics(&settings.kafka.brokers, &[&theirs]).await;
    let ours = format!("provision-ours-{suffix}");
    let wanted = spec(2, "3600000");
    let topics = [theirs.clone(), ours.clone()];

    let first = ensure_topics(&settings.kafka, &topics, &wanted)
        .await
        .expect("provisioned");
    assert_eq!(first.created, std::slice::from_ref(&ours));
    assert_eq!(first.mismatches.len(), 1, "{:?}", first.mismatches);
    let mismatch = &first.mismatches[0];
    assert_eq!(mismatch.topic, theirs);
    assert_eq!(
        mismatch.differences[0],
        Difference::Partitions {
            actual: 3,
            configured: 2
        }
    );
    assert!(
        matches!(
            &mismatch.differences[1..],
            [Difference::Config { name, actual: Some(actual), configured }]
                if name == "retention.ms" && actual != "3600000" && configured == "3600000"
        ),
        "{mismatch}"
    );
    assert!(
        mismatch.to_string().starts_with(&format!(
            "topic {theirs} has 3 partitions, config says 2; retention.ms "
        )),
        "{mismatch}"
    );

    // Nothing was changed, and the topic it created has exactly the settings.
    let second = ensure_topics(&settings.kafka, &topics, &wanted)
        .await
        .expect("provisioned again");
    assert!(second.created.is_empty());
    assert_eq!(second.mismatches, first.mismatches);
}

#[tokio::test]
async fn the_startup_logs_one_warning_per_differing_topic() {
    let (mut settings, topics) = test_settings().await;
    // The tests' topics were made with 3 partitions; these settings say 2.
    settings.topics.partitions = 2;
    let (captured, _default) = Captured::start(LevelFilter::WARN);
    let app = start(settings, topics.clone()).await;
    let logs = captured.text();
    for topic in [&topics.wallet_created, &topics.funds_added] {
        let warning = format!("topic {topic} has 3 partitions, config says 2");
        assert_eq!(logs.matches(&warning).count(), 1, "{logs}");
    }
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_service_started_on_topics_nobody_created_provisions_them_and_needs_no_auto_creation() {
    let (mut settings, topics) = test_settings().await;
    // Topics that do not exist: the service must create them before its consumers
    // subscribe and its relay publishes.
    let suffix = Uuid::now_v7().simple().to_string();
    for topic in settings.bindings.values_mut() {
        *topic = format!("fresh-{topic}-{suffix}");
    }
    let consumer = settings.kafka.consumer_config("any-group");
    assert_eq!(
        consumer.get("allow.auto.create.topics"),
        Some("false"),
        "consumers never ask the brokers to create a topic"
    );
    let (captured, _default) = Captured::start(LevelFilter::DEBUG);
    let app = start(settings, topics).await;

    // A wallet created through the API: its event goes through the outbox, the fresh topic
    // and the welcome consumer, which writes a notification.
    let user = app.new_user().await;
    let owner = app.as_user(user.id.into()).await;
    let wallet: WalletId = owner
        .create_wallet(
            &CreateWallet {
                name: "Main".to_owned(),
                currency: "USD".parse().expect("currency"),
            },
            None,
        )
        .await
        .expect("wallet created")
        .body
        .id;
    let notification = eventually("the welcome notification", || async {
        owner
            .list_notifications(user.id, &PageRequest::default())
            .await
            .ok()
            .and_then(|reply| reply.body.items.into_iter().find(|n| n.wallet_id == wallet))
    })
    .await;
    assert_eq!(notification.user_id, user.id);

    let logs = captured.text();
    assert!(logs.contains("created missing Kafka topics"), "{logs}");
    for sign in [
        "UnknownTopicOrPartition",
        "Unknown topic or partition",
        "UnknownTopic",
    ] {
        assert!(!logs.contains(sign), "{sign} in the logs:\n{logs}");
    }
    app.stop().await.expect("stops");
}
