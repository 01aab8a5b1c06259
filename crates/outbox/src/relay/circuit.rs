//! The relay's circuit towards Kafka: [`RelayStatus`] (shared with readiness and the
//! `outbox_relay_state` gauge) and the wait for the brokers while it is open.
//!
//! A failure of the infrastructure (no broker answers, deliveries time out, the producer is
//! unusable) opens the circuit: the relay stops fetching and sending, counts no attempt
//! against any row, and probes the brokers with a metadata request, backing off from
//! [`PROBE_FIRST`] to [`PROBE_MAX`]. When they answer, the circuit closes and the relay
//! drains at once, starting again from the oldest queued row.

use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use kafka::KafkaProbe;
use telemetry::metrics::OUTBOX_RELAY_STATE;
use tokio_util::sync::CancellationToken;

/// First pause between two probes of an open circuit.
pub const PROBE_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between two probes.
pub const PROBE_MAX: Duration = Duration::from_secs(5);
/// How long one probe waits for the metadata answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the relay of this process is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayState {
    /// Another instance holds the relay lock (or none was tried yet).
    Standby,
    /// Leading and publishing.
    Closed,
    /// Leading, but Kafka failed: nothing is sent until a probe answers.
    Open {
        since: DateTime<Utc>,
        reason: String,
    },
}

impl RelayState {
    /// The label of the `outbox_relay_state` gauge.
    pub fn label(&self) -> &'static str {
        match self {
            RelayState::Standby => "standby",
            RelayState::Closed => "closed",
            RelayState::Open { .. } => "open",
        }
    }
}

const LABELS: [&str; 3] = ["standby", "closed", "open"];

/// The relay's state, readable from other tasks.
#[derive(Debug)]
pub struct RelayStatus {
    state: Mutex<RelayState>,
}

impl Default for RelayStatus {
    fn default() -> Self {
        export(&RelayState::Standby);
        Self {
            state: Mutex::new(RelayState::Standby),
        }
    }
}

impl RelayStatus {
    pub fn state(&self) -> RelayState {
        self.lock().clone()
    }

    pub(super) fn set(&self, state: RelayState) {
        let mut current = self.lock();
        if *current != state {
            export(&state);
            *current = state;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RelayState> {
        // The state is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One gauge series per state, 1 for the current one.
fn export(state: &RelayState) {
    for label in LABELS {
        let value = if label == state.label() { 1.0 } else { 0.0 };
        metrics::gauge!(OUTBOX_RELAY_STATE, "state" => label).set(value);
    }
}

/// Probes the brokers until one answers (true) or `shutdown` is cancelled (false).
pub(super) async fn wait_for_brokers(probe: &KafkaProbe, shutdown: &CancellationToken) -> bool {
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(PROBE_FIRST)
        .with_max_delay(PROBE_MAX)
        .with_jitter()
        .without_max_times()
        .build();
    let mut failed = 0_u64;
    loop {
        let pause = pauses.next().unwrap_or(PROBE_MAX);
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
        match probe.check(PROBE_TIMEOUT).await {
            Ok(brokers) => {
                tracing::info!(brokers, "Kafka answers again; closing the relay's circuit");
                return true;
            }
            Err(error) => {
                failed += 1;
                // Every probe at debug; every tenth also at info, so a long outage shows.
                if failed.is_multiple_of(10) {
                    tracing::info!(error = %error, probes = failed, "Kafka still unreachable; circuit stays open");
                } else {
                    tracing::debug!(error = %error, "Kafka still unreachable; circuit stays open");
                }
            }
        }
    }
}
