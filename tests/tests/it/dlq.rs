//! Reading a dead-letter topic a page at a time (`wallet-hub dlq list --limit --after`).

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use wallet_hub_tests::{create_topics, test_settings};

#[tokio::test]
async fn dead_letters_page_in_partition_and_offset_order_and_the_pages_add_up_to_the_whole_topic() {
    let (settings, _) = test_settings().await;
    let kafka = settings.kafka.clone();
    let topic = format!("dlq-page-{}.dlq", uuid::Uuid::now_v7().simple());
    create_topics(&kafka.brokers, &[&topic]).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .expect("producer");
    // 3 records on partition 0, none on 1, 4 on partition 2.
    for (partition, n) in [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2), (2, 3)] {
        let payload = format!("p{partition}-{n}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(partition)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let read = |from: Option<(i32, i64)>, limit: usize| {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || kafka::dlq::page(&kafka, &topic, from, limit))
                .await
                .expect("no panic")
                .expect("a page")
        }
    };

    let mut pages = Vec::new();
    let mut from = None;
    loop {
        let page = read(from, 2).await;
        assert!(page.records.len() <= 2, "capped by the limit");
        pages.push(
            page.records
                .iter()
                .map(|r| String::from_utf8(r.payload.clone().expect("payload")).expect("utf-8"))
                .collect::<Vec<_>>(),
        );
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            vec!["p0-0", "p0-1"],
            vec!["p0-2", "p2-0"],
            vec!["p2-1", "p2-2"],
            vec!["p2-3"],
        ]
    );
    let whole = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        tokio::task::spawn_blocking(move || kafka::dlq::list(&kafka, &topic))
            .await
            .expect("no panic")
            .expect("list")
    };
    assert_eq!(whole.len(), 7, "list reads the same records");
    let beyond = read(Some((2, 4)), 2).await;
    assert!(
        beyond.records.is_empty() && beyond.next.is_none(),
        "past the end: empty, last"
    );
}
