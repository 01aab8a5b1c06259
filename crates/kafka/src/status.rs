//! What a running consumer reports about itself: whether it runs or is paused by an
//! outage, its partition assignment and lag, fed by the runtime and by librdkafka's
//! statistics and rebalance callbacks. Read by `/health/ready`; also exported as the
//! `consumer_state` and `consumer_lag` gauges.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use telemetry::metrics::{CONSUMER_LAG, CONSUMER_STATE};

/// Shared view of one consumer's state.
#[derive(Debug, Default)]
pub struct ConsumerStatus {
    running: AtomicBool,
    assigned_partitions: AtomicUsize,
    /// Largest lag over assigned partitions in the last statistics report (-1: unknown).
    max_lag: AtomicI64,
    /// Since when, and why, the consumer has been retrying instead of moving on: the
    /// database or the broker is unreachable. Nothing is dead-lettered meanwhile.
    paused: Mutex<Option<Pause>>,
}

/// An outage the consumer is waiting out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub since: DateTime<Utc>,
    pub reason: String,
}

impl ConsumerStatus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            max_lag: AtomicI64::new(-1),
            ..Self::default()
        })
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// The outage the consumer is waiting out, if any.
    pub fn paused(&self) -> Option<Pause> {
        self.pause_slot().clone()
    }

    /// `running`, `paused` or `stopped`: the label of the `consumer_state` gauge.
    pub fn state(&self) -> &'static str {
        if !self.is_running() {
            "stopped"
        } else if self.pause_slot().is_some() {
            "paused"
        } else {
            "running"
        }
    }

    /// Marks the consumer paused by an outage (kept from the first failure on).
    pub(crate) fn pause(&self, consumer: &'static str, reason: impl FnOnce() -> String) {
        let mut slot = self.pause_slot();
        if slot.is_none() {
            *slot = Some(Pause {
                since: Utc::now(),
                reason: reason(),
            });
            drop(slot);
            self.export(consumer);
        }
    }

    /// Marks the consumer moving again.
    pub(crate) fn resume(&self, consumer: &'static str) {
        let mut slot = self.pause_slot();
        if slot.take().is_some() {
            drop(slot);
            tracing::info!(consumer, "consumer resumed after an outage");
            self.export(consumer);
        }
    }

    /// One `consumer_state` series per state, 1 for the current one.
    pub(crate) fn export(&self, consumer: &'static str) {
        let current = self.state();
        for state in ["running", "paused", "stopped"] {
            let value = if state == current { 1.0 } else { 0.0 };
            metrics::gauge!(CONSUMER_STATE, "consumer" => consumer, "state" => state).set(value);
        }
    }

    fn pause_slot(&self) -> std::sync::MutexGuard<'_, Option<Pause>> {
        self.paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn assigned_partitions(&self) -> usize {
        self.assigned_partitions.load(Ordering::Relaxed)
    }

    /// `None` until the first statistics report after an assignment.
    pub fn max_lag(&self) -> Option<i64> {
        let lag = self.max_lag.load(Ordering::Relaxed);
        (lag >= 0).then_some(lag)
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }
}

/// librdkafka context of the consumer runtime.
pub(crate) struct RuntimeContext {
    pub(crate) status: Arc<ConsumerStatus>,
    pub(crate) group: String,
}

impl ClientContext for RuntimeContext {
    fn stats(&self, statistics: Statistics) {
        let mut max_lag = -1;
        for (topic, topic_stats) in &statistics.topics {
            for (partition, partition_stats) in &topic_stats.partitions {
                // -1 is librdkafka's internal UA partition; negative lag means unknown.
                if *partition < 0 || partition_stats.consumer_lag < 0 {
                    continue;
                }
                let lag = partition_stats.consumer_lag;
                max_lag = max_lag.max(lag);
                #[allow(clippy::cast_precision_loss)] // lag fits f64 exactly below 2^53
                metrics::gauge!(
                    CONSUMER_LAG,
                    "topic" => topic.clone(),
                    "partition" => partition.to_string(),
                    "group" => self.group.clone(),
                )
                .set(lag as f64);
            }
        }
        self.status.max_lag.store(max_lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for RuntimeContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assigned = consumer.assignment().map_or(0, |tpl| tpl.count());
        self.status
            .assigned_partitions
            .store(assigned, Ordering::Relaxed);
        tracing::info!(group = %self.group, assigned, ?rebalance, "consumer rebalanced");
    }
}
