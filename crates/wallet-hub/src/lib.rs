//! The Wallet Hub service, as a library so that tests run exactly what `main` runs.
//!
//! - [`admin`]: the admin server (`/metrics`, `/health/live`, `/health/ready`).
//! - [`audit`]: `wallet-hub audit`, reconciliation of ledger, outbox, topics and consumers.
//! - [`config`]: typed, layered settings (defaults, file, env).
//! - [`database`]: migrations and the connection pools, one per part.
//! - [`ops`]: the `outbox` and `dlq` operator commands.
//! - [`rebuild`]: `wallet-hub rebuild`, wallet rows and the activity read model
//!   recomputed from the wallets' streams.
//! - [`startup`]: [`Application`] builds everything from settings and a bound listener and
//!   runs API, relay and consumers until a shutdown token is cancelled.
//! - [`stream_replay`]: `outbox replay --from-stream`, events published again from the
//!   wallets' streams.
//! - [`topology`]: the Kafka side of a start: brokers checked, consumer groups, topics.
//! - [`identity`]: the token verifier the API checks bearer tokens with, and the local
//!   development issuer (`wallet-hub token`).
//! - [`welcome`]: `wallet-hub ready`, which waits for readiness and tells a newcomer where
//!   everything is.

pub mod admin;
pub mod audit;
pub mod config;
pub mod database;
pub mod identity;
pub mod ops;
pub mod rebuild;
pub mod startup;
pub mod stream_replay;
pub mod topology;
pub mod welcome;

pub use config::Settings;
pub use startup::Application;
