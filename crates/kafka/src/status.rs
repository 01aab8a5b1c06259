//! What a running consumer reports about itself: its partition assignment and lag, fed by
//! librdkafka's statistics and rebalance callbacks. Read by `/health/ready`; also exported
//! as the `consumer_lag` gauge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use telemetry::metrics::CONSUMER_LAG;

/// Shared, lock-free view of one consumer's state.
#[derive(Debug, Default)]
pub struct ConsumerStatus {
    running: AtomicBool,
    assigned_partitions: AtomicUsize,
    /// Largest lag over assigned partitions in the last statistics report (-1: unknown).
    max_lag: AtomicI64,
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
