//! Wallet Hub's domain: pure rules, no I/O, no async.
//!
//! - [`money`]: ISO 4217 currencies and exact amounts in integer minor units.
//! - [`wallet`]: the `Wallet` aggregate. Commands validate their input and return the
//!   domain events that describe the change; infrastructure persists and publishes them.
//! - [`events`]: the events, their shared metadata and their JSON form (the payload that
//!   travels through the outbox and Kafka).

pub mod events;
pub mod money;
pub mod wallet;

pub use events::{DomainEvent, EventContext, EventMetadata, EventType, FundsAdded, WalletCreated};
pub use money::{Currency, DecimalAmount, Money, MoneyError};
pub use wallet::{Wallet, WalletError, WalletName};
