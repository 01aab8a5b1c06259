//! The admin server: `/metrics` (Prometheus), `/health/live` and `/health/ready`, and the
//! sampler of the consumer groups' lag from their committed offsets.
//!
//! It runs in every role on its own address, so that relay-only and consumer-only
//! instances can be scraped and probed, and so that metrics never share a port with
//! client traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use kafka::{ConsumerStatus, KafkaProbe, LagReader};
use metrics_exporter_prometheus::PrometheusHandle;
use outbox::{RelayState, RelayStatus};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use telemetry::metrics::CONSUMER_GROUP_LAG;
use tokio_util::sync::CancellationToken;

/// `[admin]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// `[health]` configuration section: readiness thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub outbox_max_pending_age_seconds: u64,
    pub consumer_max_lag: i64,
    pub check_timeout_ms: u64,
    /// How often the admin server reads every consumer group's committed offsets.
    pub group_lag_interval_ms: u64,
}

/// What the admin server looks at. `kafka`, `relay` and `consumers` are present only in
/// the roles that use them.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub pool: PgPool,
    pub metrics: PrometheusHandle,
    pub health: HealthConfig,
    pub kafka: Option<KafkaProbe>,
    /// The topics this instance produces to or consumes from: each must be available.
    pub topics: Vec<String>,
    /// The relay's state, when this instance relays the outbox (then its circuit and the
    /// outbox age are part of readiness).
    pub relay: Option<Arc<RelayStatus>>,
    /// The consumers this instance runs, by name.
    pub consumers: Vec<(&'static str, Arc<ConsumerStatus>)>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: &'static str,
    detail: String,
}

impl Check {
    fn new(name: &'static str, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self {
                name,
                status: "up",
                detail,
            },
            Err(detail) => Self {
                name,
                status: "down",
                detail,
            },
        }
    }
}

async fn live() -> Json<Health> {
    Json(Health {
        status: "up",
        checks: Vec::new(),
    })
}

/// 200 when every check of this instance's roles is up, 503 naming the failing ones.
async fn ready(State(state): State<AdminState>) -> (StatusCode, Json<Health>) {
    let timeout = Duration::from_millis(state.health.check_timeout_ms);
    let mut checks = vec![
        Check::new("database", check_database(&state.pool, timeout).await),
        Check::new("database_pool", check_pool(&state.pool)),
    ];
    if let Some(kafka) = &state.kafka {
        let result = match kafka.check(timeout).await {
            Ok(brokers) => Ok(format!("metadata from {brokers} broker(s)")),
            Err(error) => Err(format!("metadata request failed: {error}")),
        };
        let reachable = result.is_ok();
        checks.push(Check::new("kafka", result));
        if reachable {
            checks.push(Check::new(
                "topics",
                check_topics(kafka, &state.topics, timeout).await,
            ));
        }
    }
    if let Some(relay) = &state.relay {
        checks.push(Check::new("relay", check_relay(&relay.state())));
        checks.push(Check::new("outbox", check_outbox(&state, timeout).await));
    }
    if !state.consumers.is_empty() {
        let results: Vec<Result<String, String>> = state
            .consumers
            .iter()
            .map(|(name, status)| {
                check_consumer(status, &state.health)
                    .map(|ok| format!("{name}: {ok}"))
                    .map_err(|down| format!("{name}: {down}"))
            })
            .collect();
        let all_up = results.iter().all(Result::is_ok);
        let joined = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|down| down))
            .collect::<Vec<_>>()
            .join("; ");
        checks.push(Check::new(
            "consumer",
            if all_up { Ok(joined) } else { Err(joined) },
        ));
    }
    let up = checks.iter().all(|c| c.status == "up");
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if up { "up" } else { "down" },
            checks,
        }),
    )
}

async fn check_database(pool: &PgPool, timeout: Duration) -> Result<String, String> {
    let ping = async { store::ping(&mut *pool.acquire().await?).await };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(_)) => Ok("query answered".to_owned()),
        Ok(Err(error)) => Err(format!("query failed: {error}")),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn check_topics(
    kafka: &KafkaProbe,
    topics: &[String],
    timeout: Duration,
) -> Result<String, String> {
    match kafka.unavailable_topics(topics, timeout).await {
        Ok(unavailable) if unavailable.is_empty() => {
            Ok(format!("{} topic(s) available", topics.len()))
        }
        Ok(unavailable) => Err(unavailable.join("; ")),
        Err(error) => Err(format!("metadata request failed: {error}")),
    }
}

fn check_relay(state: &RelayState) -> Result<String, String> {
    match state {
        RelayState::Closed => Ok("leading; circuit closed, publishing".to_owned()),
        RelayState::Standby => Ok("standing by: another instance leads".to_owned()),
        RelayState::Open { since, reason } => Err(format!(
            "circuit open since {} ({} s): Kafka failed ({reason}); nothing is sent and \
             nothing parks until a probe answers",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            (chrono::Utc::now() - *since).num_seconds()
        )),
    }
}

fn check_pool(pool: &PgPool) -> Result<String, String> {
    let size = pool.size();
    let idle = pool.num_idle();
    let max = pool.options().get_max_connections();
    let detail = format!("{size}/{max} connections, {idle} idle");
    if size >= max && idle == 0 {
        Err(format!("exhausted: {detail}"))
    } else {
        Ok(detail)
    }
}

async fn check_outbox(state: &AdminState, timeout: Duration) -> Result<String, String> {
    let query = outbox::store::oldest_pending_age_seconds(&state.pool);
    let age = match tokio::time::timeout(timeout, query).await {
        Ok(Ok(age)) => age,
        Ok(Err(error)) => return Err(format!("query failed: {error}")),
        Err(_) => return Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    let max = state.health.outbox_max_pending_age_seconds;
    let detail = format!("oldest pending event is {age} s old (limit {max} s)");
    if age > max { Err(detail) } else { Ok(detail) }
}

fn check_consumer(status: &ConsumerStatus, health: &HealthConfig) -> Result<String, String> {
    if !status.is_running() {
        return Err("consumer is not running".to_owned());
    }
    if let Some(pause) = status.paused() {
        return Err(format!(
            "paused since {} ({} s), retrying: {}",
            pause
                .since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            (chrono::Utc::now() - pause.since).num_seconds(),
            pause.reason
        ));
    }
    let assigned = status.assigned_partitions();
    match status.max_lag() {
        Some(lag) if lag > health.consumer_max_lag => Err(format!(
            "{assigned} partition(s) assigned, max lag {lag} (limit {})",
            health.consumer_max_lag
        )),
        Some(lag) => Ok(format!("{assigned} partition(s) assigned, max lag {lag}")),
        None => Ok(format!(
            "{assigned} partition(s) assigned, lag not reported yet"
        )),
    }
}

/// Reads every consumer group's lag from its committed offsets every `interval` and
/// exports it as `consumer_group_lag`, until `shutdown`. Runs in every role, so the series
/// exists (and grows) while every consumer of a group is down.
pub async fn sample_group_lag(
    reader: LagReader,
    interval: Duration,
    timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        match reader.read(timeout).await {
            Ok(lags) => {
                for lag in lags {
                    #[allow(clippy::cast_precision_loss)] // lag fits f64 exactly below 2^53
                    metrics::gauge!(
                        CONSUMER_GROUP_LAG,
                        "group" => lag.group,
                        "topic" => lag.topic,
                        "partition" => lag.partition.to_string(),
                    )
                    .set(lag.lag as f64);
                }
            }
            Err(error) => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "cannot read consumer group offsets; keeping the last lag sample"
                );
            }
        }
    }
}
