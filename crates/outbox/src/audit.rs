//! Reconciliation queries about the outbox, for `wallet-hub audit`: does every ledger
//! transaction have its one event, did every published event reach its topic (by CloudEvent
//! id, keyed by its aggregate, in per-key order), and did the activity consumer apply each
//! event it recorded in its inbox exactly once.
//!
//! Each check is one set-based statement; those returning rows that break an invariant
//! return at most `limit` of them, each carrying `total`, how many broke it in all.
//!
//! The Kafka side is compared inside PostgreSQL: [`snapshot_published`] copies the events
//! that must be on Kafka into a session-local table *before* the topics' end offsets are
//! taken, [`store_records`] loads what the topics hold into another, and the checks join the
//! two. Both tables are temporary: run these on one connection (not a pool) that is closed
//! afterwards.

use chrono::{DateTime, Utc};
use domain::EventType;
use event_bindings::EventBindings;
use kafka::scan::ScannedRecord;
use sqlx::PgConnection;
use uuid::Uuid;

/// The money events and the ledger kind each one records (a hold's events too: placing,
/// capturing, voiding and expiring each write one ledger transaction).
const MONEY_EVENTS: [(EventType, &str); 7] = [
    (EventType::FundsAdded, "deposit"),
    (EventType::FundsWithdrawn, "withdrawal"),
    (EventType::FundsTransferred, "transfer"),
    (EventType::HoldPlaced, "hold"),
    (EventType::HoldCaptured, "capture"),
    (EventType::HoldVoided, "void"),
    (EventType::HoldExpired, "expiry"),
];

fn money_events() -> (Vec<&'static str>, Vec<&'static str>) {
    MONEY_EVENTS
        .iter()
        .map(|(event_type, kind)| (event_type.as_str(), *kind))
        .unzip()
}

/// The outbox's money events from `$1` on, with the ledger transaction each names (NULL
/// when the payload names none or something that is not a UUID) and the kind it must have.
/// `$2`, `$3`: event types and their ledger kinds.
macro_rules! money_events_cte {
    () => {
        "money AS ( \
     SELECT o.id, o.event_id, o.event_type, m.kind, o.payload, \
            CASE WHEN r.ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
                 THEN r.ref::uuid END AS transaction_id \
     FROM outbox o \
     JOIN unnest($2::text[], $3::text[]) AS m(event_type, kind) ON m.event_type = o.event_type \
     CROSS JOIN LATERAL (SELECT COALESCE(o.payload->>'transaction_id', o.payload->>'transfer_id', \
                                         o.payload->>'hold_id') AS ref) r \
     WHERE o.created_at >= $1)"
    };
}

/// Outbox events (all types) written at or after `from`.
pub async fn count_events(
    conn: &mut PgConnection,
    from: Option<DateTime<Utc>>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE $1::timestamptz IS NULL OR created_at >= $1",
    )
    .bind(from)
    .fetch_one(conn)
    .await
}

/// A ledger transaction without exactly one outbox event of its kind.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventCountMismatch {
    pub transaction_id: Uuid,
    pub kind: String,
    pub events: i64,
    pub total: i64,
}

/// Ledger transactions created at or after `from` that do not have exactly one money event
/// of the matching type in the outbox. Outbox rows are looked at from `from` minus ten
/// minutes, so that a clock difference between the service and the database does not hide
/// an event.
pub async fn transactions_without_one_event(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<EventCountMismatch>, sqlx::Error> {
    let (types, kinds) = money_events();
    sqlx::query_as(concat!(
        "WITH ",
        money_events_cte!(),
        " \
         SELECT t.id AS transaction_id, t.kind, count(m.id) AS events, count(*) OVER () AS total \
         FROM ledger_transactions t \
         LEFT JOIN money m ON m.transaction_id = t.id AND m.kind = t.kind \
         WHERE t.created_at >= $1 + interval '10 minutes' \
         GROUP BY t.id, t.kind HAVING count(m.id) <> 1 \
         ORDER BY t.id LIMIT $4"
    ))
    .bind(
        from.checked_sub_signed(chrono::Duration::minutes(10))
            .unwrap_or(from),
    )
    .bind(types)
    .bind(kinds)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A money event in the outbox whose ledger transaction does not exist.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventWithoutTransaction {
    pub outbox_id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// What the payload names (`transaction_id` or `transfer_id`), if anything.
    pub names: Option<String>,
    pub total: i64,
}

/// Money events written at or after `from` that name no ledger transaction of their kind.
pub async fn events_without_transaction(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<EventWithoutTransaction>, sqlx::Error> {
    let (types, kinds) = money_events();
    sqlx::query_as(concat!(
        "WITH ",
        money_events_cte!(),
        " \
         SELECT m.id AS outbox_id, m.event_id, m.event_type, \
                COALESCE(m.payload->>'transaction_id', m.payload->>'transfer_id') AS names, \
                count(*) OVER () AS total \
         FROM money m \
         WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t \
                           WHERE t.id = m.transaction_id AND t.kind = m.kind) \
         ORDER BY m.id LIMIT $4"
    ))
    .bind(from)
    .bind(types)
    .bind(kinds)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Copies the events that must be on Kafka by now into the session's `audit_expected`
/// table: written before `settled_before` (and at or after `since`), and no longer queued,
/// i.e. acknowledged by Kafka before this statement ran. Returns how many.
///
/// Run it before the topics' end offsets are taken: then every copied event was
/// acknowledged before the offsets were, and must lie below them. An event whose
/// transaction commits later is not copied, however old its row.
pub async fn snapshot_published(
    conn: &mut PgConnection,
    bindings: &EventBindings,
    settled_before: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
) -> Result<i64, sqlx::Error> {
    let (types, topics): (Vec<&str>, Vec<&str>) = EventType::ALL
        .iter()
        .map(|t| (t.as_str(), bindings.destination(*t)))
        .unzip();
    sqlx::query("DROP TABLE IF EXISTS pg_temp.audit_expected")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE audit_expected AS \
         SELECT o.id, o.event_id::text AS event_id, o.event_type, \
                o.aggregate_id::text AS aggregate_id, b.topic \
         FROM outbox o \
         JOIN unnest($1::text[], $2::text[]) AS b(event_type, topic) ON b.event_type = o.event_type \
         WHERE o.created_at < $3 AND ($4::timestamptz IS NULL OR o.created_at >= $4) \
           AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id)",
    )
    .bind(types)
    .bind(topics)
    .bind(settled_before)
    .bind(since)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DROP TABLE IF EXISTS pg_temp.audit_records")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE audit_records \
         (topic text NOT NULL, partition integer NOT NULL, \"offset\" bigint NOT NULL, \
          key text, ce_id text)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT count(*) FROM audit_expected")
        .fetch_one(conn)
        .await
}

/// Adds records read from Kafka to the session's `audit_records` table.
pub async fn store_records(
    conn: &mut PgConnection,
    records: &[ScannedRecord],
) -> Result<(), sqlx::Error> {
    let topics: Vec<&str> = records.iter().map(|r| r.topic.as_str()).collect();
    let partitions: Vec<i32> = records.iter().map(|r| r.partition).collect();
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    let keys: Vec<Option<&str>> = records.iter().map(|r| r.key.as_deref()).collect();
    let ids: Vec<Option<&str>> = records.iter().map(|r| r.ce_id.as_deref()).collect();
    sqlx::query(
        "INSERT INTO audit_records (topic, partition, \"offset\", key, ce_id) \
         SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::text[])",
    )
    .bind(topics)
    .bind(partitions)
    .bind(offsets)
    .bind(keys)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the planner the loaded tables' sizes (temporary tables are never auto-analyzed).
pub async fn analyze_snapshot(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("ANALYZE pg_temp.audit_expected, pg_temp.audit_records")
        .execute(conn)
        .await?;
    Ok(())
}

/// What the topics held, as far as the audit compared them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordCounts {
    pub records: i64,
    /// Records of an event already seen earlier on its topic (at-least-once re-sends).
    pub duplicates: i64,
}

pub async fn record_counts(conn: &mut PgConnection) -> Result<RecordCounts, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS records, \
                count(ce_id) - count(DISTINCT (topic, ce_id)) FILTER (WHERE ce_id IS NOT NULL) \
                    AS duplicates \
         FROM audit_records",
    )
    .fetch_one(conn)
    .await
}

/// A published event and where the audit found it (or not).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Placement {
    pub outbox_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    pub topic: String,
    /// The record's position and key (the first occurrence for order), if found.
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub key: Option<String>,
    pub total: i64,
}

/// Published events with no record of their CloudEvent id on their topic.
pub async fn missing_from_topics(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<Placement>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id AS outbox_id, e.event_id, e.event_type, e.aggregate_id, e.topic, \
                NULL::integer AS partition, NULL::bigint AS \"offset\", NULL::text AS key, \
                count(*) OVER () AS total \
         FROM audit_expected e \
         WHERE NOT EXISTS (SELECT 1 FROM audit_records r \
                           WHERE r.topic = e.topic AND r.ce_id = e.event_id) \
         ORDER BY e.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Records of published events whose key is not the event's aggregate id.
pub async fn wrongly_keyed(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<Placement>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id AS outbox_id, e.event_id, e.event_type, e.aggregate_id, e.topic, \
                r.partition, r.\"offset\", r.key, count(*) OVER () AS total \
         FROM audit_expected e \
         JOIN audit_records r ON r.topic = e.topic AND r.ce_id = e.event_id \
         WHERE r.key IS DISTINCT FROM e.aggregate_id \
         ORDER BY e.id, r.partition, r.\"offset\" LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// An event whose first record on its topic comes before the first record of an earlier
/// event of the same key (or lies in another partition).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderBreak {
    pub outbox_id: i64,
    pub event_type: String,
    pub aggregate_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The key's previous event (by outbox id) on the same topic, and where it is.
    pub previous_outbox_id: i64,
    pub previous_partition: i32,
    pub previous_offset: i64,
    pub total: i64,
}

/// For each (topic, key), the first occurrences of its published events must follow outbox
/// id order within one partition. Later duplicates do not count.
pub async fn order_breaks(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<OrderBreak>, sqlx::Error> {
    sqlx::query_as(
        "WITH first AS ( \
             SELECT DISTINCT ON (topic, ce_id) topic, ce_id, partition, \"offset\" \
             FROM audit_records WHERE ce_id IS NOT NULL \
             ORDER BY topic, ce_id, partition, \"offset\"), \
         placed AS ( \
             SELECT e.id, e.event_type, e.aggregate_id, e.topic, f.partition, f.\"offset\", \
                    lag(e.id) OVER w AS previous_outbox_id, \
                    lag(f.partition) OVER w AS previous_partition, \
                    lag(f.\"offset\") OVER w AS previous_offset \
             FROM audit_expected e JOIN first f ON f.topic = e.topic AND f.ce_id = e.event_id \
             WINDOW w AS (PARTITION BY e.topic, e.aggregate_id ORDER BY e.id)) \
         SELECT id AS outbox_id, event_type, aggregate_id, topic, partition, \"offset\", \
                previous_outbox_id, previous_partition, previous_offset, count(*) OVER () AS total \
         FROM placed \
         WHERE previous_outbox_id IS NOT NULL \
           AND (partition <> previous_partition OR \"offset\" < previous_offset) \
         ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A wallet whose activity row counts another number of applied events than the activity
/// consumer's inbox holds for the wallet's events.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InboxMismatch {
    pub wallet_id: Uuid,
    pub events_applied: i64,
    pub inbox_rows: i64,
    pub total: i64,
}

/// Per wallet of the activity projection: `events_applied` must equal the number of inbox
/// rows of `consumer` for the wallet's balance events (a transfer, and a capture into a
/// wallet, counts for both wallets).
/// Only wallets whose money events are all still in the outbox (one per ledger entry, none
/// trimmed by retention) and whose latest ledger entry is older than `settled_before`.
pub async fn inbox_mismatches(
    conn: &mut PgConnection,
    consumer: &str,
    settled_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<InboxMismatch>, sqlx::Error> {
    let types: Vec<&str> = EventType::BALANCE_MOVES
        .iter()
        .map(|t| t.as_str())
        .collect();
    sqlx::query_as(
        "WITH movements AS ( \
             SELECT o.event_id::text AS event_id, w.wallet_id \
             FROM outbox o \
             CROSS JOIN LATERAL (VALUES (o.payload->>'wallet_id'), (o.payload->>'from_wallet_id'), \
                                        (o.payload->>'to_wallet_id')) AS w(wallet_id) \
             WHERE o.event_type = ANY($1) AND w.wallet_id IS NOT NULL), \
         per_wallet AS ( \
             SELECT m.wallet_id, count(*) AS events, count(i.event_id) AS inbox_rows \
             FROM movements m \
             LEFT JOIN inbox i ON i.consumer = $2 AND i.event_id = m.event_id \
             GROUP BY m.wallet_id), \
         ledger AS ( \
             SELECT wallet_id::text AS wallet_id, count(*) AS movements, max(created_at) AS latest \
             FROM ledger_entries WHERE wallet_id IS NOT NULL AND account = 'balance' \
             GROUP BY wallet_id) \
         SELECT a.wallet_id, a.events_applied, p.inbox_rows, count(*) OVER () AS total \
         FROM wallet_activity a \
         JOIN ledger l ON l.wallet_id = a.wallet_id::text \
         JOIN per_wallet p ON p.wallet_id = a.wallet_id::text \
         WHERE l.latest < $3 AND p.events = l.movements AND a.events_applied <> p.inbox_rows \
         ORDER BY a.wallet_id LIMIT $4",
    )
    .bind(types)
    .bind(consumer)
    .bind(settled_before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
