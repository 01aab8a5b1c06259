//! Wallet Hub's domain: pure rules, no I/O, no async.
//!
//! - [`ids`]: typed ids (`WalletId`, `UserId`, `EventId`, `TransactionId`).
//! - [`money`]: ISO 4217 currencies and exact amounts in integer minor units.
//! - `display_name`: the rule shared by the names people give things (wallets, users).
//! - [`user`]: the `User` aggregate, its validated `Email` and `UserName`.
//! - [`wallet`]: the `Wallet` aggregate. Commands validate their input and return the
//!   domain events that describe the change; infrastructure persists and publishes them.
//! - [`wallet_status`]: a wallet's lifecycle (active, frozen, closed) and its transitions.
//! - [`transfer`]: moving money between two wallets, all or nothing.
//! - [`hold`]: holds (money reserved now, captured, voided or expired later) and their
//!   exact expiry; `holding`: the hold commands of `decide` (docs/holds.md).
//! - [`ledger`]: a ledger transaction's kind and entries.
//! - [`stream`]: a wallet's event stream (gapless sequences, the truth of a wallet) and
//!   its fold, which applies each event with the same `Wallet::apply` the commands use.
//! - [`command`]: the commands on wallets and the one pure decision that judges them
//!   (what the write pipeline runs, alone or in a batch).
//! - [`analytics`]: what the analytics job (Flink) sends back: volume per minute, velocity.
//! - [`events`]: the events, their shared metadata and their JSON form (the payload that
//!   travels through the outbox and Kafka), each declared once (its type, payload, schema
//!   version and whether the analytics job derives it); everything by type is generated.
//!
//! A command that returns an error has changed nothing.

pub mod analytics;
pub mod command;
mod display_name;
pub mod events;
pub mod hold;
mod holding;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod stream;
pub mod transfer;
pub mod user;
pub mod wallet;
pub mod wallet_status;

pub use analytics::{VelocityExceeded, VolumeComputed, VolumeTotal};
pub use command::{
    Command, Decision, Held, Outcome, Posting, Refusal, StatusChange, Submission, VersionCondition,
    decide,
};
pub use events::{
    Actor, DomainEvent, EventContext, EventMetadata, EventType, FundsAdded, FundsReceived,
    FundsTransferred, FundsWithdrawn, HoldCaptured, HoldExpired, HoldPlaced, HoldVoided,
    PayloadVisitor, UserCreated, WalletCreated, WalletStatusChanged,
};
pub use hold::{Expiry, Hold, HoldStatus, UnknownHoldStatus};
pub use ids::{EventId, HoldId, TransactionId, UserId, WalletId};
pub use money::{Currency, DecimalAmount, Money, MoneyError};
pub use stream::{Appended, Flow, FoldError, fold, money_moved};
pub use transfer::{check_source, transfer};
pub use user::{Email, User, UserError, UserName};
pub use wallet::{Wallet, WalletError, WalletName};
pub use wallet_status::{StatusAction, UnknownWalletStatus, WalletStatus};
