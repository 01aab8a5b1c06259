//! Consumers of Wallet Hub's own events.
//!
//! - [`inbox`]: records which events a consumer has applied, in the effect's transaction.
//! - [`notifications`]: the `NotificationService` (welcome notifications) and its queries.
//! - [`wallet_created`]: `WalletCreatedEventConsumer`, which sends the welcome notification.
//! - [`activity`]: `WalletActivityProjection`, the per-wallet activity read model.
//! - [`errors`]: sorting database errors into transient (retry) and permanent.

pub mod activity;
pub mod errors;
pub mod inbox;
pub mod notifications;
pub mod wallet_created;

pub use activity::WalletActivityProjection;
pub use notifications::{Notification, NotificationService};
pub use wallet_created::WalletCreatedEventConsumer;
