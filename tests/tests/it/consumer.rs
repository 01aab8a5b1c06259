//! The welcome consumer applies each event once, however often it arrives.

mod batch;
mod churn;

use chrono::Utc;
use domain::{DomainEvent, EventContext, UserId, Wallet, WalletId, WalletName};
use kafka::EventProducer;
use rdkafka::Message;
use telemetry::TraceHeaders;
use uuid::Uuid;
use wallet_hub_client::PageRequest;

use wallet_hub_tests::{cloud_event, deposit_event, eventually, header, spawn_app_with};

fn wallet_created(user_id: Uuid) -> DomainEvent {
    let ctx = EventContext::new(Utc::now(), "dup");
    let name = WalletName::parse("Twice").expect("valid");
    let currency = "USD".parse().expect("ISO 4217");
    Wallet::create(WalletId::new(), UserId::from(user_id), name, currency, &ctx)
        .1
        .into()
}

#[tokio::test]
async fn a_wallet_created_event_delivered_twice_sends_one_welcome_notification() {
    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    // A registered user, so its notifications can be read (an unknown user's are 404).
    let user = app.fixture_user().await;
    let first = wallet_created(user);
    let key = first.metadata().aggregate_id.to_string();
    let second = wallet_created(user);

    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    let topic = &app.topics.wallet_created;
    // Same event twice, then another wallet's event on the same key (same partition), so
    // that once the last one is applied, both copies have been processed.
    for event in [&first, &first, &second] {
        producer
            .send(topic, &key, cloud_event(event), &TraceHeaders::default())
            .expect("enqueued")
            .await
            .expect("delivered");
    }

    let list = eventually("both wallets' welcomes", || async {
        let list = notifications(&app, user).await;
        (list.len() >= 2).then_some(list)
    })
    .await;
    assert_eq!(list.len(), 2, "one notification per wallet");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(inbox, 2, "the duplicate was recognised, not applied");
}

/// Sum of `events_consumed_total` with `outcome` over the series of this app's topics.
async fn consumed(app: &wallet_hub_tests::TestApp, outcome: &str) -> u64 {
    let text = app.admin_get("/metrics").await.text().await.expect("text");
    let suffix = app
        .topics
        .funds_added
        .rsplit('-')
        .next()
        .expect("suffix")
        .to_owned();
    text.lines()
        .filter(|l| l.starts_with("events_consumed_total{"))
        .filter(|l| l.contains(&suffix) && l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The wallet's activity read model, read by the operator through the typed client.
async fn activity(app: &wallet_hub_tests::TestApp, wallet: &str) -> wallet_hub_client::Activity {
    let wallet: WalletId = wallet.parse().expect("a wallet id");
    app.operator()
        .activity(wallet)
        .await
        .expect("activity")
        .body
}

/// The user's notifications, read by the operator through the typed client.
async fn notifications(
    app: &wallet_hub_tests::TestApp,
    user: Uuid,
) -> Vec<wallet_hub_client::Notification> {
    app.operator()
        .list_notifications(UserId::from(user), &PageRequest::default())
        .await
        .expect("notifications")
        .body
        .items
}

#[tokio::test]
async fn redelivery_from_the_earliest_offset_and_replays_apply_every_effect_once() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;

    let app = spawn_app_with(|_| {}).await;
    let (user, a, b) = app.money_scenario().await;

    let expected_a = serde_json::json!({"in": "10.00", "out": "3.00", "events": 3});
    let expected_b = serde_json::json!({"in": "2.00", "out": "0.00", "events": 1});
    let summary = |v: &wallet_hub_client::Activity| serde_json::json!({"in": v.total_in, "out": v.total_out, "events": v.events_applied});
    eventually("the projection to catch up", || async {
        (summary(&activity(&app, &a).await) == expected_a
            && summary(&activity(&app, &b).await) == expected_b)
            .then_some(())
    })
    .await;
    eventually("both welcomes", || async {
        (notifications(&app, user).await.len() == 2).then_some(())
    })
    .await;
    let before = activity(&app, &a).await;

    // Redelivery: the groups forget their offsets and read everything again.
    let (settings, topics) = (app.settings.clone(), app.topics.clone());
    app.stop().await.expect("clean stop");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .create()
        .expect("admin");
    let groups = [
        settings.consumer.group_id.clone(),
        format!("{}-activity", settings.consumer.group_id),
    ];
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    for result in admin
        .delete_groups(&group_refs, &AdminOptions::new())
        .await
        .expect("delete groups")
    {
        result.expect("group deleted");
    }
    let app = wallet_hub_tests::start(settings, topics).await;
    eventually("all five events redelivered as duplicates", || async {
        (consumed(&app, "duplicate").await >= 5).then_some(())
    })
    .await;
    assert_eq!(
        activity(&app, &a).await,
        before,
        "redelivery changed nothing"
    );
    assert_eq!(summary(&activity(&app, &b).await), expected_b);
    let list = notifications(&app, user).await;
    assert_eq!(list.len(), 2, "one welcome per wallet");

    // A replay publishes a's four events again with their ids: still applied once.
    let selection = outbox::ops::ReplaySelection {
        aggregate_id: Some(a.parse().expect("uuid")),
        ..Default::default()
    };
    let bindings = event_bindings::EventBindings::new(&app.settings.bindings).expect("bindings");
    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    let replayed = outbox::ops::replay(&app.pool, &producer, &bindings, &selection, 100, |_| {})
        .await
        .expect("replay");
    assert_eq!(replayed, 4);
    eventually("the replayed events counted as duplicates", || async {
        (consumed(&app, "duplicate").await >= 9).then_some(())
    })
    .await;
    assert_eq!(activity(&app, &a).await, before, "replay changed nothing");
    assert_eq!(consumed(&app, "dead_lettered").await, 0);
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_later_messages_are_processed() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;

    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let topic = app.topics.funds_added.clone();
    let key = Uuid::now_v7().to_string();
    let raw: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    let headers = |ce_type: &str, id: &str| {
        OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(id),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("/wallet-hub"),
            })
            .insert(Header {
                key: "ce_type",
                value: Some(ce_type),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            })
    };
    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(300_000));
    let poison: Vec<(&str, String)> = vec![
        ("io.wallethub.funds.added.v1", "{not json".to_owned()),
        ("io.wallethub.funds.stolen.v1", "{}".to_owned()),
        (
            "io.wallethub.funds.added.v1",
            serde_json::json!({"event_id": Uuid::now_v7()}).to_string(),
        ),
        ("io.wallethub.funds.added.v1", oversized),
    ];
    for (ce_type, payload) in &poison {
        let id = Uuid::now_v7().to_string();
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(payload)
            .headers(headers(ce_type, &id));
        raw.send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
    }
    // A good event on the same key (same partition), after the poison.
    let user = app.fixture_user().await;
    let wallet = app.create_wallet_for(user, "USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let added = deposit_event(wallet.parse().expect("uuid"), 700);
    let producer = EventProducer::new(&app.settings.kafka).expect("producer");
    producer
        .send(&topic, &key, cloud_event(&added), &TraceHeaders::default())
        .expect("enqueued")
        .await
        .expect("delivered");

    eventually("the good event applied", || async {
        (activity(&app, &wallet).await.total_in == "7.00").then_some(())
    })
    .await;
    let dead =
        wallet_hub_tests::read_records(&app.settings.kafka.brokers, &format!("{topic}.dlq"), 4)
            .await;
    let mut classes = Vec::new();
    let mut offsets = Vec::new();
    for (record, (ce_type, payload)) in dead.iter().zip(&poison) {
        assert_eq!(record.key(), Some(key.as_bytes()), "original key");
        assert_eq!(record.payload(), Some(payload.as_bytes()), "original value");
        assert_eq!(
            header(record, "ce_type").as_deref(),
            Some(*ce_type),
            "original headers"
        );
        assert_eq!(
            header(record, "dlq_original_topic").as_deref(),
            Some(topic.as_str())
        );
        assert!(header(record, "dlq_original_partition").is_some_and(|p| p.parse::<i32>().is_ok()));
        offsets.push(
            header(record, "dlq_original_offset")
                .expect("offset")
                .parse::<i64>()
                .expect("number"),
        );
        assert_eq!(
            header(record, "dlq_consumer").as_deref(),
            Some("wallet-activity")
        );
        assert!(header(record, "dlq_error_message").is_some_and(|m| !m.is_empty()));
        let time = header(record, "dlq_time").expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(&time).is_ok());
        classes.push(header(record, "dlq_error_class").expect("class"));
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "in partition order: {offsets:?}"
    );
    assert_eq!(
        classes,
        [
            "schema-invalid",
            "unknown-type",
            "schema-invalid",
            "oversized"
        ],
        "not JSON, an unknown type, data missing its fields, too large"
    );
    assert_eq!(consumed(&app, "dead_lettered").await, 4);
}

#[tokio::test]
async fn operators_list_dead_letters_and_redrive_chosen_ones_to_their_topic() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;

    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let topic = app.topics.funds_added.clone();
    let dlq_topic = format!("{topic}.dlq");
    // A valid event that an earlier consumer version dead-lettered, and a hopeless one.
    let user = app.fixture_user().await;
    let wallet = app.create_wallet_for(user, "USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let added = deposit_event(wallet.parse().expect("uuid"), 300);
    let message = cloudevents::binding::rdkafka::MessageRecord::from_event(cloud_event(&added))
        .expect("record");
    let raw: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    use cloudevents::binding::rdkafka::FutureRecordExt;
    let mut good = FutureRecord::to(&dlq_topic)
        .key(&wallet)
        .message_record(&message);
    let headers = good
        .headers
        .take()
        .expect("ce headers")
        .insert(Header {
            key: "dlq_original_topic",
            value: Some(topic.as_str()),
        })
        .insert(Header {
            key: "dlq_error_class",
            value: Some("permanent"),
        });
    good.headers = Some(headers);
    let delivery = raw
        .send(good, Duration::from_secs(10))
        .await
        .expect("delivered");
    let (good_partition, good_offset) = (delivery.partition, delivery.offset);
    let bad_headers = OwnedHeaders::new()
        .insert(Header {
            key: "dlq_original_topic",
            value: Some(topic.as_str()),
        })
        .insert(Header {
            key: "dlq_error_class",
            value: Some("undecodable"),
        });
    raw.send(
        FutureRecord::to(&dlq_topic)
            .key(&wallet)
            .payload("garbage")
            .headers(bad_headers),
        Duration::from_secs(10),
    )
    .await
    .expect("delivered");

    let kafka = app.settings.kafka.clone();
    let listed = {
        let (kafka, dlq_topic) = (kafka.clone(), dlq_topic.clone());
        tokio::task::spawn_blocking(move || kafka::dlq::list(&kafka, &dlq_topic))
            .await
            .expect("no panic")
            .expect("list")
    };
    assert_eq!(listed.len(), 2);
    let chosen: Vec<_> = listed
        .into_iter()
        .filter(|r| (r.partition, r.offset) == (good_partition, good_offset))
        .collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0].header("dlq_error_class"), Some("permanent"));
    let mut progress = Vec::new();
    let sent = kafka::dlq::redrive(&kafka, &chosen, |n| progress.push(n))
        .await
        .expect("redrive");
    assert_eq!((sent, progress), (1, vec![1]));

    eventually("the redriven event applied", || async {
        (activity(&app, &wallet).await.total_in == "3.00").then_some(())
    })
    .await;
    let back = wallet_hub_tests::read_records(&app.settings.kafka.brokers, &topic, 1).await;
    assert_eq!(
        header(&back[0], "ce_id"),
        Some(added.metadata().event_id.to_string()),
        "same CloudEvent id"
    );
    assert_eq!(
        header(&back[0], "dlq_original_topic"),
        None,
        "dlq headers stripped"
    );
    assert_eq!(consumed(&app, "dead_lettered").await, 0);
}

#[tokio::test]
async fn two_instances_share_partitions_and_a_rebalance_mid_stream_loses_and_doubles_nothing() {
    let first = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let second = wallet_hub_tests::start(first.settings.clone(), first.topics.clone()).await;
    let producer = EventProducer::new(&first.settings.kafka).expect("producer");
    let wallets: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    let send_round = async || {
        for wallet in &wallets {
            let event = deposit_event(*wallet, 100);
            producer
                .send(
                    &first.topics.funds_added,
                    &wallet.to_string(),
                    cloud_event(&event),
                    &TraceHeaders::default(),
                )
                .expect("enqueued")
                .await
                .expect("delivered");
        }
    };
    for _ in 0..3 {
        send_round().await;
    }
    // One instance leaves in the middle of the stream: its partitions move to the other.
    second.stop().await.expect("clean stop");
    for _ in 0..3 {
        send_round().await;
    }

    eventually("every event applied", || async {
        let applied: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(events_applied), 0)::bigint FROM wallet_activity",
        )
        .fetch_one(&first.pool)
        .await
        .ok()?;
        (applied >= 72).then_some(())
    })
    .await;
    for wallet in &wallets {
        let mut conn = first.pool.acquire().await.expect("connection");
        let activity = store::activity::find(&mut conn, WalletId::from(*wallet))
            .await
            .expect("query")
            .expect("projected");
        assert_eq!(
            (activity.events_applied, activity.total_in_minor),
            (6, 600),
            "wallet {wallet}"
        );
    }
    let inbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'wallet-activity'")
            .fetch_one(&first.pool)
            .await
            .expect("count");
    assert_eq!(inbox, 72);
}

#[tokio::test]
async fn a_cloud_event_in_structured_mode_is_accepted_too() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;

    let app = spawn_app_with(|settings| settings.relay.enabled = false).await;
    let wallet_id = Uuid::now_v7();
    let added = deposit_event(wallet_id, 250);
    let body = serde_json::to_string(&cloud_event(&added)).expect("structured JSON");
    let raw: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new().insert(Header {
        key: "content-type",
        value: Some("application/cloudevents+json"),
    });
    raw.send(
        FutureRecord::to(&app.topics.funds_added)
            .key(&wallet_id.to_string())
            .payload(&body)
            .headers(headers),
        Duration::from_secs(10),
    )
    .await
    .expect("delivered");
    let activity = eventually("the structured event applied", || async {
        let mut conn = app.pool.acquire().await.ok()?;
        store::activity::find(&mut conn, WalletId::from(wallet_id))
            .await
            .ok()?
    })
    .await;
    assert_eq!((activity.events_applied, activity.total_in_minor), (1, 250));
    assert_eq!(consumed(&app, "dead_lettered").await, 0);
}
