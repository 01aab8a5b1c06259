//! Prometheus metrics: the one recorder of the process and the names of every metric.
//!
//! Names live here as constants so that code, dashboards and alert rules agree
//! (`deploy/metrics.txt` lists what the dashboard and alerts query; a test checks that a
//! running service exports each). Labels stay low-cardinality: never an id.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests by `method`, matched `route` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// HTTP request latency by `method`, `route`, `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// Counter: requests refused before they ran, by `reason`: `overloaded` (write
/// concurrency limit, 503), `default` or `money-out` (the rate-limit policy, 429).
pub const HTTP_REQUESTS_REFUSED_TOTAL: &str = "http_requests_refused_total";
/// Counter: bearer tokens refused, by `reason` (expired, bad_signature, ...: a fixed set).
pub const AUTH_REFUSED_TOTAL: &str = "auth_refused_total";
/// Unsent outbox rows.
pub const OUTBOX_QUEUE_SIZE: &str = "outbox_queue_size";
/// Age of the oldest unsent outbox row (0 when none).
pub const OUTBOX_OLDEST_PENDING_AGE_SECONDS: &str = "outbox_oldest_pending_age_seconds";
/// Outbox rows parked after too many failed attempts (waiting for `outbox redrive`).
pub const OUTBOX_PARKED_TOTAL: &str = "outbox_parked_total";
/// Relay sends by `topic` and `outcome` (`ok`, `failed`).
pub const EVENTS_PUBLISHED_TOTAL: &str = "events_published_total";
/// From outbox commit to broker acknowledgement, by `topic`.
pub const OUTBOX_PUBLISH_LATENCY_SECONDS: &str = "outbox_publish_latency_seconds";
/// Consumed messages by `topic`, `consumer`, `outcome` (`ok`, `duplicate`, `retried`,
/// `dead_lettered`).
pub const EVENTS_CONSUMED_TOTAL: &str = "events_consumed_total";
/// From the event's `time` to its effect committed, by `topic`, `consumer`.
pub const EVENT_PROCESSING_LATENCY_SECONDS: &str = "event_processing_latency_seconds";
/// Money movements per batch of the API's batching writer (a histogram, no labels).
pub const API_WRITE_BATCH_REQUESTS: &str = "api_write_batch_requests";
/// Batches whose database error persisted through its retries, so each of their requests
/// ran as a batch of one, by `reason` (`database`).
pub const API_WRITE_BATCH_FALLBACKS_TOTAL: &str = "api_write_batch_fallbacks_total";
/// COMMITs that failed and whose outcome the writer then asked a fresh session for, by
/// `outcome` (`committed`, `aborted`, `unknown`: answered 503 `outcome-unknown`).
pub const API_WRITE_COMMIT_OUTCOMES_RESOLVED_TOTAL: &str =
    "api_write_commit_outcomes_resolved_total";
/// Messages behind the high watermark, by `topic`, `partition`, `group`, as a running
/// consumer sees it (absent when no consumer runs).
pub const CONSUMER_LAG: &str = "consumer_lag";
/// Messages behind the end offset, by `group`, `topic`, `partition`, from the group's
/// committed offsets: read by the admin server of every instance, so it exists and grows
/// while every consumer of the group is down.
pub const CONSUMER_GROUP_LAG: &str = "consumer_group_lag";
/// 1 for the state each consumer is in, by `consumer` and `state` (`running`, `paused`:
/// retrying through an outage, `stopped`).
pub const CONSUMER_STATE: &str = "consumer_state";
/// 1 for the state the relay is in, by `state` (`closed`: publishing, `open`: Kafka
/// failed and the relay waits for it, `standby`: another instance leads).
pub const OUTBOX_RELAY_STATE: &str = "outbox_relay_state";
/// Pool connections by `pool` (`api`, `relay`, `consumers`) and `state` (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Configured pool size, by `pool`.
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
/// Messages the producer has enqueued but the broker has not acknowledged.
pub const KAFKA_PRODUCER_QUEUE_DEPTH: &str = "kafka_producer_queue_depth";
/// Producers the relay replaced after librdkafka declared them unusable (fatal error).
pub const KAFKA_PRODUCER_RECREATED_TOTAL: &str = "kafka_producer_recreated_total";
/// Gauge: the newest minute of volume the analytics job reported per `currency` and `kind`
/// (`deposit`, `withdrawal`, `transfer`): the amount in the currency's major units. For
/// dashboards only (a float); the exact sums are `GET /v1/analytics/volume`'s.
pub const ANALYTICS_VOLUME_MINUTE_AMOUNT: &str = "analytics_volume_minute_amount";
/// Gauge: the movements of that minute, by `currency` and `kind`.
pub const ANALYTICS_VOLUME_MINUTE_MOVEMENTS: &str = "analytics_volume_minute_movements";
/// Always 1, labelled with `version`.
pub const BUILD_INFO: &str = "wallet_hub_build_info";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns the handle that renders
/// `/metrics`. Later calls return the same handle (tests run many apps in one process).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
