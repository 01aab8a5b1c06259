//! Consumers of Wallet Hub's own events.
//!
//! - [`notifications`]: [`send_welcomes`], the design's `NotificationService` (welcome
//!   notifications).
//! - [`wallet_created`]: `WalletCreatedEventConsumer`, which sends the welcome notification.
//! - [`activity`]: `WalletActivityProjection`, which feeds the per-wallet activity read model.
//! - [`analytics`]: `VolumeProjection` and `VelocityAlerts`, which read the analytics job's
//!   results (volume per minute, velocity alerts).
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

/// Every event type some consumer of ours reads: their topics have dead-letter topics,
/// and the AsyncAPI document says we receive them.
pub fn consumed_event_types() -> Vec<domain::EventType> {
    let mut types: Vec<domain::EventType> = WalletCreatedEventConsumer::EVENT_TYPES
        .iter()
        .chain(WalletActivityProjection::EVENT_TYPES)
        .chain(VolumeProjection::EVENT_TYPES)
        .chain(VelocityAlerts::EVENT_TYPES)
        .copied()
        .collect();
    types.dedup();
    types
}
pub use notifications::send_welcomes;
pub use wallet_created::WalletCreatedEventConsumer;
