//! Group members that come and go while their group rebalances never block their owner.
//!
//! librdkafka can wait forever when a consumer is closed during a rebalance (rust-rdkafka
//! issue 509): `scripts/test` once hung for good in a test's teardown that way. Here members
//! join a group and are stopped again while it is still rebalancing, over and over, both
//! ways a member ends: its shutdown token (the consumer commits and closes, bounded by
//! `close_timeout`) and its task aborted mid-await (the future dropped, as a runtime does to
//! its tasks when it shuts down). The test runs on a current-thread runtime, so one close
//! on the test's thread would stop everything.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use kafka::{EventHandler, EventProducer, HandlerError, KafkaConfig, Outcome, ReceivedEvent};
use telemetry::TraceHeaders;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use wallet_hub_tests::broker::group_member;
use wallet_hub_tests::{cloud_event, create_topics, deposit_event, eventually, spawn_app_with};

/// Records the ids of the events it sees.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashSet<String>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl EventHandler for Seen {
    fn name(&self) -> &'static str {
        "churn"
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let fresh = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(received.event.id().to_owned());
        Ok(if fresh {
            Outcome::Applied
        } else {
            Outcome::Duplicate
        })
    }
}

/// How long a member gets to commit and close at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A group member consuming `topic` with `handler` until `shutdown` (or until its task is
/// aborted).
fn member(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    trusted: &[String],
    handler: Seen,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), kafka::consumer::ConsumerError>> {
    group_member(
        kafka,
        group,
        topic,
        trusted,
        handler,
        CLOSE_TIMEOUT,
        shutdown,
    )
}

#[tokio::test]
async fn members_stopped_while_their_group_rebalances_never_block_and_the_group_keeps_consuming() {
    let app = spawn_app_with(|settings| {
        settings.relay.enabled = false;
        settings.consumer.enabled = false;
    })
    .await;
    // A member whose close is stuck in librdkafka (the hang this test is about: it must not
    // block the test) can stay in the group, heartbeating, until max.poll.interval.ms
    // (five minutes by default) and keep its partitions from the others: here 15 s.
    let mut kafka = app.settings.kafka.clone();
    kafka
        .consumer
        .insert("max.poll.interval.ms".to_owned(), "15000".to_owned());
    let kafka = &kafka;
    let trusted = &app.settings.consumer.trusted_sources;
    let suffix = Uuid::now_v7().simple().to_string();
    let (topic, group) = (format!("churn-{suffix}"), format!("churn-{suffix}"));
    create_topics(&kafka.brokers, &[&topic]).await;

    let steady = Seen::default();
    let steady_stop = CancellationToken::new();
    let steady_member = member(
        kafka,
        &group,
        &topic,
        trusted,
        steady.clone(),
        steady_stop.clone(),
    );
    // The bound on one member's end: its close timeout, and room for a loaded machine.
    let bound = CLOSE_TIMEOUT + Duration::from_secs(20);
    for round in 0..12_u64 {
        let stop = CancellationToken::new();
        let joining = member(
            kafka,
            &group,
            &topic,
            trusted,
            Seen::default(),
            stop.clone(),
        );
        // Somewhere in the join and the rebalance it starts (the broker's initial rebalance
        // delay and the group's sync take a few seconds).
        tokio::time::sleep(Duration::from_millis(150 + round * 230)).await;
        if round % 2 == 0 {
            stop.cancel();
            tokio::time::timeout(bound, joining)
                .await
                .unwrap_or_else(|_| panic!("round {round}: a stopped member returned in time"))
                .expect("the member's task did not panic")
                .expect("the member ran");
        } else {
            joining.abort();
            let ended = tokio::time::timeout(bound, joining)
                .await
                .unwrap_or_else(|_| panic!("round {round}: an aborted member ended in time"));
            assert!(
                ended.is_err_and(|e| e.is_cancelled()),
                "round {round}: aborted"
            );
        }
    }

    // The group still works: the member that stayed gets everything produced now.
    let producer = EventProducer::new(kafka).expect("producer");
    for minor in 1..=20 {
        let event = deposit_event(Uuid::now_v7(), minor);
        let key = event.metadata().aggregate_id.to_string();
        producer
            .send(&topic, &key, cloud_event(&event), &TraceHeaders::default())
            .expect("enqueued")
            .await
            .expect("delivered");
    }
    eventually("the steady member to see all 20 events", || async {
        (steady.count() >= 20).then_some(())
    })
    .await;
    steady_stop.cancel();
    tokio::time::timeout(bound, steady_member)
        .await
        .expect("the steady member stopped in time")
        .expect("no panic")
        .expect("the steady member ran");
    assert_eq!(steady.count(), 20, "each event seen once, nothing else");
}
