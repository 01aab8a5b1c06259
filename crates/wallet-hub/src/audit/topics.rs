//! The topics' checks: every settled, published event is on its topic (by `ce_id`), keyed
//! by its aggregate, in per-key order. The topics are read once into the session's
//! snapshot tables and compared inside PostgreSQL.

use chrono::{DateTime, Utc};
use event_bindings::EventBindings;
use kafka::scan::TopicScan;
use outbox::audit as outbox_audit;
use sqlx::PgConnection;

use super::progress::Progress;
use super::report::count;
use super::{
    AuditError, AuditOptions, AuditReport, KAFKA_SINCE_MARGIN, KEYED, LIST_LIMIT, ON_TOPIC, ORDER,
    db_err,
};
use crate::Settings;

/// Every settled, published event is on its topic, keyed by its aggregate, in per-key order.
pub(super) async fn check(
    conn: &mut PgConnection,
    settings: &Settings,
    bindings: &EventBindings,
    options: &AuditOptions,
    settled_before: DateTime<Utc>,
    progress: &Progress,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    progress.step("published events");
    // Before the end offsets are taken: see `snapshot_published`.
    let published = outbox_audit::snapshot_published(conn, bindings, settled_before, options.since)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.checked.published_events = count(published);
    // The analytics job's topics hold no outbox event.
    let topics = bindings.outbox_topics();
    let mut scan = TopicScan::start(
        &settings.kafka,
        &topics,
        options.since.map(|since| {
            since
                .checked_sub_signed(KAFKA_SINCE_MARGIN)
                .unwrap_or(since)
        }),
    )
    .await?;
    progress.records(scan.total);
    let mut read = 0_u64;
    while let Some(batch) = scan.next_batch().await {
        let batch = batch?;
        outbox_audit::store_records(conn, &batch)
            .await
            .map_err(db_err(ON_TOPIC))?;
        read += u64::try_from(batch.len()).unwrap_or(u64::MAX);
        progress.read(read);
    }
    progress.step("topics against the outbox");
    outbox_audit::analyze_snapshot(conn)
        .await
        .map_err(db_err(ON_TOPIC))?;
    let counts = outbox_audit::record_counts(conn)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.checked.kafka_records = count(counts.records);
    report.checked.kafka_duplicates = count(counts.duplicates);
    let rows = outbox_audit::missing_from_topics(conn, LIST_LIMIT)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.add(
        ON_TOPIC,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "outbox event {} ({} {}, key {}) is not on topic {}",
                r.outbox_id, r.event_type, r.event_id, r.aggregate_id, r.topic
            )
        },
    );
    let rows = outbox_audit::wrongly_keyed(conn, LIST_LIMIT)
        .await
        .map_err(db_err(KEYED))?;
    report.add(
        KEYED,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "outbox event {} ({} {}) is at {}/{}@{} keyed {}, not by its aggregate {}",
                r.outbox_id,
                r.event_type,
                r.event_id,
                r.topic,
                r.partition.unwrap_or(-1),
                r.offset.unwrap_or(-1),
                r.key.as_deref().unwrap_or("(no key)"),
                r.aggregate_id
            )
        },
    );
    let rows = outbox_audit::order_breaks(conn, LIST_LIMIT)
        .await
        .map_err(db_err(ORDER))?;
    report.add(ORDER, &rows, |r| r.total, |r| {
        format!(
            "key {} on {}: outbox event {} ({}) first appears at {}@{}, but the earlier event {} at {}@{}",
            r.aggregate_id,
            r.topic,
            r.outbox_id,
            r.event_type,
            r.partition,
            r.offset,
            r.previous_outbox_id,
            r.previous_partition,
            r.previous_offset
        )
    });
    Ok(())
}
