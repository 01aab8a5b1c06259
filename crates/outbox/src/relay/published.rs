//! The relay's publish metrics: `events_published_total` by topic and outcome, and the
//! commit-to-ack histogram. Delivered rows are counted per topic and batch, so metric
//! handles are looked up (and their label strings built) once per topic and batch, not
//! once per row.

use std::time::Duration;

use telemetry::metrics::{EVENTS_PUBLISHED_TOTAL, OUTBOX_PUBLISH_LATENCY_SECONDS};

/// Topic label of rows whose event type has no binding.
pub(super) const UNRESOLVED_TOPIC: &str = "unresolved";

/// Counts one row that could not be published.
pub(super) fn count_failed(topic: &str) {
    metrics::counter!(EVENTS_PUBLISHED_TOTAL, "topic" => topic.to_owned(), "outcome" => "failed")
        .increment(1);
}

/// One batch's delivered rows by topic.
#[derive(Default)]
pub(super) struct DeliveredByTopic<'a> {
    topics: Vec<(&'a str, u64, metrics::Histogram)>,
}

impl<'a> DeliveredByTopic<'a> {
    /// Notes one delivered row and records its commit-to-ack latency.
    pub(super) fn record(&mut self, topic: &'a str, commit_to_ack: Duration) {
        let index = match self.topics.iter().position(|(t, ..)| *t == topic) {
            Some(index) => index,
            None => {
                let histogram = metrics::histogram!(
                    OUTBOX_PUBLISH_LATENCY_SECONDS, "topic" => topic.to_owned()
                );
                self.topics.push((topic, 0, histogram));
                self.topics.len() - 1
            }
        };
        let (_, count, histogram) = &mut self.topics[index];
        *count += 1;
        histogram.record(commit_to_ack.as_secs_f64());
    }

    /// Adds the batch's counts to `events_published_total{outcome="ok"}`.
    pub(super) fn count(&self) {
        for (topic, count, _) in &self.topics {
            metrics::counter!(EVENTS_PUBLISHED_TOTAL, "topic" => (*topic).to_owned(), "outcome" => "ok")
                .increment(*count);
        }
    }
}
