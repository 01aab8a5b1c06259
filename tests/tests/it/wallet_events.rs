//! `GET /v1/wallets/{id}/events`: a wallet's stream as the CloudEvents that published it,
//! paged by sequence, for its owner and admins only; and a consumer's gap detection
//! ([`event_bindings::SequenceTracker`]) on records read back from the real broker.

use cloudevents::AttributesReader;
use cloudevents::binding::rdkafka::MessageExt;
use domain::WalletId;
use event_bindings::{Observed, SequenceTracker};
use rdkafka::Message;
use serde_json::Value;
use wallet_hub_client::{Amount, Client, CreateTransfer, WalletEvent};
use wallet_hub_tests::events::sequenced_cloud_event;
use wallet_hub_tests::{
    TestApp, create_topics, deposit_event, header, read_records, send_event, spawn_app,
};

/// Every event of `wallet` as `client` reads it, in pages of `page_size`.
async fn events(client: &Client, wallet: WalletId, page_size: u32) -> Vec<WalletEvent> {
    client
        .wallet_events_after(wallet, 0, page_size)
        .await
        .expect("the wallet's events")
}

fn types(events: &[WalletEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn sequences(events: &[WalletEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

/// The wallet's version, as the API shows it.
async fn version(app: &TestApp, wallet: WalletId) -> i64 {
    app.operator()
        .get_wallet(wallet)
        .await
        .expect("wallet")
        .body
        .version
}

/// What the stream of `wallet` holds in the database: (sequence, event id, payload).
async fn stored(app: &TestApp, wallet: WalletId) -> Vec<(i64, uuid::Uuid, Value)> {
    sqlx::query_as(
        "SELECT sequence, event_id, payload FROM wallet_events WHERE wallet_id = $1 \
         ORDER BY sequence",
    )
    .bind(wallet.as_uuid())
    .fetch_all(&app.pool)
    .await
    .expect("the stream")
}

#[tokio::test]
async fn the_owner_reads_every_change_of_a_wallet_in_sequence_order_as_its_cloud_events_carry_it() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    let shop = app.new_wallet("USD").await.id;
    let owner = app.as_owner(wallet).await;
    let operator = app.operator();
    for amount in ["10.00", "5.00"] {
        operator
            .deposit(wallet, &Amount::new(amount), None)
            .await
            .expect("deposit");
    }
    owner
        .withdraw(wallet, &Amount::new("2.00"), None)
        .await
        .expect("withdrawal");
    let transfer = CreateTransfer {
        from_wallet_id: wallet,
        to_wallet_id: shop,
        amount: "3.00".to_owned(),
    };
    let transfer = owner
        .transfer(&transfer, None)
        .await
        .expect("transfer")
        .body;
    operator.freeze(wallet, None).await.expect("frozen");

    let read = events(&owner, wallet, 200).await;
    assert_eq!(
        types(&read),
        [
            "io.wallethub.wallet.created.v1",
            "io.wallethub.funds.added.v1",
            "io.wallethub.funds.added.v1",
            "io.wallethub.funds.withdrawn.v1",
            "io.wallethub.funds.transferred.v1",
            "io.wallethub.wallet.status-changed.v1",
        ]
    );
    let last = version(&app, wallet).await;
    assert_eq!(sequences(&read), (1..=last).collect::<Vec<_>>());
    assert!(read.iter().all(|e| !e.migrated), "nothing was migrated");
    for event in &read {
        assert_eq!(event.data["event_id"], event.id.to_string());
        assert_eq!(event.data["aggregate_id"], wallet.to_string());
    }
    let amounts: Vec<&Value> = read[1..5].iter().map(|e| &e.data["amount"]).collect();
    assert_eq!(
        amounts,
        [
            &serde_json::json!({"value": "10.00", "currency": "USD"}),
            &serde_json::json!({"value": "5.00", "currency": "USD"}),
            &serde_json::json!({"value": "2.00", "currency": "USD"}),
            &serde_json::json!({"value": "3.00", "currency": "USD"}),
        ]
    );
    assert_eq!(read[3].data["balance_after"]["value"], "13.00");
    assert_eq!(read[4].data["transfer_id"], transfer.id.to_string());
    assert_eq!(read[5].data["to"], "frozen");

    // From the other side: the items are the stream as stored, event for event...
    let rows = stored(&app, wallet).await;
    let items: Vec<(i64, uuid::Uuid, Value)> = read
        .iter()
        .map(|e| (e.sequence, e.id.as_uuid(), e.data.clone()))
        .collect();
    assert_eq!(items, rows);
    // ...and what the relay published: the same id, sequence and data on the topic.
    let published = read_records(&app.settings.kafka.brokers, &app.topics.funds_added, 2).await;
    for record in &published {
        let id = header(record, "ce_id").expect("ce_id");
        let item = read
            .iter()
            .find(|e| e.id.to_string() == id)
            .expect("every published deposit is in the stream");
        let sequence = header(record, "ce_sequence").expect("ce_sequence");
        assert_eq!(sequence, format!("{:019}", item.sequence));
        let data: Value = serde_json::from_slice(record.payload().expect("data")).expect("JSON");
        assert_eq!(data, item.data);
    }

    // The receiving wallet's stream has the transfer as FundsReceived.
    let received = events(&app.as_owner(shop).await, shop, 200).await;
    assert_eq!(
        types(&received),
        [
            "io.wallethub.wallet.created.v1",
            "io.wallethub.funds.received.v1",
        ]
    );
    assert_eq!(sequences(&received), [1, 2]);
    let funds = &received[1].data;
    assert_eq!(funds["from_wallet_id"], wallet.to_string());
    assert_eq!(funds["transaction_id"], transfer.id.to_string());
    assert_eq!(funds["balance_after"]["value"], "3.00");
    let published = read_records(&app.settings.kafka.brokers, &app.topics.funds_received, 1).await;
    assert_eq!(
        header(&published[0], "ce_id"),
        Some(received[1].id.to_string())
    );
    assert_eq!(
        header(&published[0], "ce_sequence").as_deref(),
        Some("0000000000000000002")
    );
    assert_eq!(header(&published[0], "ce_subject"), Some(shop.to_string()));
}

#[tokio::test]
async fn pages_of_a_wallets_events_cover_its_stream_once_in_order_whatever_their_size() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    let operator = app.operator();
    for cents in 1..=7 {
        let amount = Amount::new(format!("0.{cents:02}"));
        operator
            .deposit(wallet, &amount, None)
            .await
            .expect("deposit");
    }
    let owner = app.as_owner(wallet).await;
    let all: Vec<i64> = (1..=8).collect();
    for limit in [1_u32, 3, 7, 8, 9, 200] {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = owner
                .wallet_events(wallet, after, Some(limit))
                .await
                .expect("a page")
                .body;
            assert!(page.items.len() <= limit as usize, "limit {limit}");
            assert!(
                page.items.first().is_none_or(|e| e.sequence == after + 1),
                "limit {limit}: a page starts right after `after_sequence`"
            );
            seen.extend(sequences(&page.items));
            match page.next_after_sequence {
                Some(next) => {
                    assert_eq!(Some(next), seen.last().copied(), "limit {limit}");
                    after = next;
                }
                None => break,
            }
        }
        assert_eq!(seen, all, "limit {limit}: every event once, in order");
    }
    let tail = owner
        .wallet_events(wallet, 5, None)
        .await
        .expect("a page")
        .body;
    assert_eq!(sequences(&tail.items), [6, 7, 8]);
    assert_eq!(tail.next_after_sequence, None);
    for after in [8, 9, i64::MAX] {
        let past = owner
            .wallet_events(wallet, after, None)
            .await
            .expect("an empty page")
            .body;
        assert!(past.items.is_empty() && past.next_after_sequence.is_none());
    }
}

#[tokio::test]
async fn an_admin_reads_any_wallets_events_and_anyone_else_is_told_it_does_not_exist() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(wallet, &Amount::new("1.00"), None)
        .await
        .expect("deposit");
    let owners = events(&app.as_owner(wallet).await, wallet, 200).await;
    let admin = app
        .api
        .with_token(app.token("risk-desk", &["wallets:admin"]));
    assert_eq!(events(&admin, wallet, 200).await, owners);

    let stranger = app.as_user(app.new_user().await.id.into()).await;
    let missing = WalletId::new();
    for (client, id) in [(&stranger, wallet), (&stranger, missing), (&admin, missing)] {
        let error = client
            .wallet_events(id, 0, None)
            .await
            .expect_err("refused");
        let problem = error.problem().expect("a problem");
        assert_eq!((problem.status, problem.slug()), (404, "not-found"));
    }
    // A token with another scope is no admin: still a stranger.
    let depositor = app
        .api
        .with_token(app.token("processor", &["wallets:deposit"]));
    let error = depositor
        .wallet_events(wallet, 0, None)
        .await
        .expect_err("refused");
    assert_eq!(error.problem().map(|p| p.status), Some(404));
}

#[tokio::test]
async fn malformed_paging_values_are_refused_as_problems_and_change_nothing() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(wallet, &Amount::new("1.00"), None)
        .await
        .expect("deposit");
    let token = app
        .owner_token(&wallet.to_string())
        .await
        .expect("an owner");
    let (before, outbox) = (stored(&app, wallet).await, app.outbox_rows().await);
    for query in [
        "after_sequence=-1",
        "after_sequence=abc",
        "after_sequence=1.5",
        "after_sequence=",
        "after_sequence=99999999999999999999",
        "limit=0",
        "limit=201",
        "limit=-3",
        "limit=ten",
        "cursor=0192f0c1-0000-7000-8000-000000000000",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/wallets/{wallet}/events?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 400, "{query}");
        let media = response.headers()[reqwest::header::CONTENT_TYPE].clone();
        assert_eq!(media, "application/problem+json", "{query}");
        let problem: Value = response.json().await.expect("JSON");
        assert_eq!(
            problem["type"].as_str(),
            Some(app.url("/problems/malformed-request").as_str()),
            "{query}: {problem}"
        );
        assert_eq!(problem["status"], 400);
    }
    assert_eq!(
        stored(&app, wallet).await,
        before,
        "the stream is unchanged"
    );
    assert_eq!(app.outbox_rows().await, outbox, "nothing was written");
    assert_eq!(version(&app, wallet).await, 2);
}

/// Events of one wallet put on a topic by the test, as the relay would publish them.
async fn publish(brokers: &str, topic: &str, wallet: uuid::Uuid, sequences: &[i64]) {
    for sequence in sequences {
        let event = sequenced_cloud_event(&deposit_event(wallet, 100), Some(*sequence));
        send_event(brokers, topic, &wallet.to_string(), event).await;
    }
}

/// What the tracker makes of the records of `topic` after its first `skip`, up to its
/// `count`th, in order: a consumer's judgement of each wallet event it receives.
async fn observe_records(
    brokers: &str,
    topic: &str,
    (skip, count): (usize, usize),
    tracker: &mut SequenceTracker<String>,
) -> Vec<Observed> {
    let records = read_records(brokers, topic, count).await;
    records[skip..count]
        .iter()
        .map(|record| {
            let event = record.to_event().expect("a CloudEvent");
            let sequence = event_bindings::cloud_event::sequence(&event)
                .expect("a valid sequence")
                .expect("a wallet event has one");
            let wallet = event.subject().expect("its wallet").to_owned();
            tracker.observe(wallet, sequence)
        })
        .collect()
}

#[tokio::test]
async fn a_consumer_detects_a_missing_sequence_and_tells_a_redelivery_from_a_late_arrival() {
    let settings = wallet_hub::Settings::load(None).expect("settings");
    let brokers = settings.kafka.brokers.as_str();
    let topic = format!("sequence-gaps-{}", uuid::Uuid::now_v7().simple());
    create_topics(brokers, &[&topic]).await;
    let wallet = uuid::Uuid::now_v7();
    let key = wallet.to_string();
    // 3 is missing (lost, or still on another topic); 2 is delivered twice.
    publish(brokers, &topic, wallet, &[1, 2, 4, 2]).await;
    let mut tracker = SequenceTracker::new();
    let observed = observe_records(brokers, &topic, (0, 4), &mut tracker).await;
    assert_eq!(
        observed,
        [
            Observed::Next,
            Observed::Next,
            Observed::Gap { missing: 3..=3 },
            Observed::Duplicate,
        ]
    );
    assert_eq!(tracker.missing(&key), [3..=3]);
    assert_eq!(tracker.last(&key), Some(4));

    // 3 arrives after all, then 5 and 3 again: late once, then a duplicate.
    publish(brokers, &topic, wallet, &[3, 5, 3]).await;
    let observed = observe_records(brokers, &topic, (4, 7), &mut tracker).await;
    assert_eq!(
        observed,
        [Observed::Late, Observed::Next, Observed::Duplicate]
    );
    assert!(tracker.missing(&key).is_empty());
    assert_eq!(tracker.last(&key), Some(5));
}
