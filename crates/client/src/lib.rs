//! A typed Rust client for Wallet Hub's HTTP API, over `reqwest`.
//!
//! - [`Client`]: one async method per operation of the API (users, wallets, deposits and
//!   withdrawals, transfers, freeze/unfreeze/close, history, events, activity,
//!   notifications, and
//!   for admins the analytics volume and risk alerts),
//!   acting as the principal of its bearer token ([`Client::with_token`]).
//! - [`types`]: the request and answer bodies as they are on the wire; lists that page are
//!   [`Page`]s read with a [`PageRequest`].
//! - [`Reply`]: a 2xx answer with the headers a caller needs: `Location`,
//!   `Idempotent-Replayed`, `ETag`.
//! - [`Error`]: a non-2xx answer is [`Error::Problem`] with the server's RFC 9457
//!   [`Problem`] (`type`, `title`, `status`, `detail`); match on its type, never its detail.
//! - [`IdempotencyKey`]: writes take one to be safe to retry.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use wallet_hub_client::{Amount, Client, IdempotencyKey};
//!
//! let api = Client::new("http://127.0.0.1:8080")?.with_token("<access token>");
//! let wallet: wallet_hub_client::WalletId = "0192f0c1-0000-7000-8000-000000000000".parse()?;
//! let key = IdempotencyKey::new("deposit-2024-001")?;
//! let deposit = api.deposit(wallet, &Amount::new("10.50"), Some(&key)).await?;
//! println!("balance {} (replayed: {})", deposit.body.balance_after, deposit.replayed);
//! # Ok(())
//! # }
//! ```
//!
//! Layout: `client` (the [`Client`] and its methods), `holds` (the hold operations, the
//! balance at an instant and statements, and their bodies: [`PlaceHold`], [`Hold`],
//! [`Capture`], [`BalanceAt`], [`Statement`]), `events` (a wallet's event stream:
//! [`WalletEvent`], [`WalletEventPage`]), `types` (bodies), `reply` ([`Reply`]),
//! `error` ([`Error`], [`Problem`]), `idempotency` ([`IdempotencyKey`]).
//!
//! The client depends on no server crate: only on `domain` for the typed ids, currency and
//! wallet status, which serialize as the API writes them.

mod client;
mod error;
mod events;
mod holds;
mod idempotency;
mod reply;
pub mod types;

/// The typed ids, currency and wallet status of the bodies, so that callers need no other
/// crate to name them.
pub use domain::{Currency, EventId, HoldId, TransactionId, UserId, WalletId, WalletStatus};

pub use client::Client;
pub use error::{Error, Problem, ProblemResponse};
pub use events::{WalletEvent, WalletEventPage};
pub use holds::{
    BalanceAt, Capture, Hold, HoldStatusFilter, PlaceHold, Statement, StatementAccounts,
    StatementItem,
};
pub use idempotency::{IdempotencyKey, InvalidIdempotencyKey};
pub use reply::Reply;
pub use types::{
    Activity, Actor, Amount, CreateTransfer, CreateUser, CreateWallet, HistoryItem, Movement,
    Notification, Page, PageRequest, RiskAlert, Transfer, User, VolumeMinute, VolumeRange,
    VolumeTotal, Wallet,
};
