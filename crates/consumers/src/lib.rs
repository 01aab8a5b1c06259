//! Consumers of Wallet Hub's own events.
//!
//! - [`notifications`]: [`send_welcomes`], the design's `NotificationService` (welcome
//!   notifications).
//! - [`wallet_created`]: `WalletCreatedEventConsumer`, which sends the welcome notification.
//! - [`activity`]: `WalletActivityProjection`, which feeds the per-wallet activity read model.
//! - [`analytics`]: `VolumeProjection` and `VelocityAlerts`, which read the analytics job's
//!   results (volume per minute, velocity alerts).
//! - [`Consumer`]: every consumer, declared once: its name, consumer group and event types,
//!   which the service binary, the topic provisioning and the lag reader all read.
//! - [`errors`]: sorting store errors into transient (retry) and permanent.
//! - `inbox`: the inbox keys of a batch and what the inbox's answer means.
//!
//! Each handler applies a batch of events (a poll's records of one partition) in one
//! transaction: the inbox rows in one statement, then the new events' effects set-based,
//! through the `store` crate (which owns the SQL); this crate decides what an event means.

pub mod activity;
pub mod analytics;
pub mod errors;
mod inbox;
pub mod notifications;
pub mod wallet_created;

pub use activity::WalletActivityProjection;
pub use analytics::{VelocityAlerts, VolumeProjection};

/// Every consumer of ours, declared once. The service spawns each (matching on this enum,
/// so a new one cannot be forgotten), the topology gives each its group and topics, and
/// the lag reader reads those groups: nothing keeps lists in step by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// [`WalletCreatedEventConsumer`]: welcome notifications.
    WelcomeNotifications,
    /// [`WalletActivityProjection`]: the per-wallet activity read model.
    WalletActivity,
    /// [`VolumeProjection`]: the analytics job's volume per minute.
    AnalyticsVolume,
    /// [`VelocityAlerts`]: the analytics job's velocity alerts.
    VelocityAlerts,
}

impl Consumer {
    pub const ALL: [Consumer; 4] = [
        Consumer::WelcomeNotifications,
        Consumer::WalletActivity,
        Consumer::AnalyticsVolume,
        Consumer::VelocityAlerts,
    ];

    /// Its name (logs, metrics, its inbox rows).
    pub fn name(self) -> &'static str {
        match self {
            Consumer::WelcomeNotifications => WalletCreatedEventConsumer::NAME,
            Consumer::WalletActivity => WalletActivityProjection::NAME,
            Consumer::AnalyticsVolume => VolumeProjection::NAME,
            Consumer::VelocityAlerts => VelocityAlerts::NAME,
        }
    }

    /// Its consumer group, after `consumer.group_id`: a projection keeps its own offsets.
    /// The welcome consumer's group is `consumer.group_id` itself (as it always was).
    pub fn group_suffix(self) -> &'static str {
        match self {
            Consumer::WelcomeNotifications => "",
            Consumer::WalletActivity => "-activity",
            Consumer::AnalyticsVolume => "-analytics-volume",
            Consumer::VelocityAlerts => "-velocity-alerts",
        }
    }

    /// The event types it reads (their topics are its subscription).
    pub fn event_types(self) -> &'static [domain::EventType] {
        match self {
            Consumer::WelcomeNotifications => WalletCreatedEventConsumer::EVENT_TYPES,
            Consumer::WalletActivity => WalletActivityProjection::EVENT_TYPES,
            Consumer::AnalyticsVolume => VolumeProjection::EVENT_TYPES,
            Consumer::VelocityAlerts => VelocityAlerts::EVENT_TYPES,
        }
    }
}

/// Every event type some consumer of ours reads: their topics have dead-letter topics,
/// and the AsyncAPI document says we receive them.
pub fn consumed_event_types() -> Vec<domain::EventType> {
    let mut types: Vec<domain::EventType> = Vec::new();
    for event_type in Consumer::ALL.iter().flat_map(|c| c.event_types()) {
        if !types.contains(event_type) {
            types.push(*event_type);
        }
    }
    types
}
pub use notifications::send_welcomes;
pub use wallet_created::WalletCreatedEventConsumer;

#[cfg(test)]
mod tests {
    use super::Consumer;

    #[test]
    fn every_consumer_has_its_own_name_and_group_and_reads_something() {
        let mut names: Vec<&str> = Consumer::ALL.iter().map(|c| c.name()).collect();
        let mut groups: Vec<&str> = Consumer::ALL.iter().map(|c| c.group_suffix()).collect();
        names.sort_unstable();
        names.dedup();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(names.len(), Consumer::ALL.len(), "names are unique");
        assert_eq!(groups.len(), Consumer::ALL.len(), "groups are unique");
        for consumer in Consumer::ALL {
            assert!(
                !consumer.event_types().is_empty(),
                "{consumer:?} reads events"
            );
        }
        let consumed = super::consumed_event_types();
        for consumer in Consumer::ALL {
            for event_type in consumer.event_types() {
                assert!(consumed.contains(event_type), "{event_type} is consumed");
            }
        }
    }
}
