//! The Wallet Hub service, as a library so that tests run exactly what `main` runs.
//!
//! - [`admin`]: the admin server (`/metrics`, `/health/live`, `/health/ready`).
//! - [`audit`]: `wallet-hub audit`, reconciliation of ledger, outbox, topics and consumers.
//! - [`config`]: typed, layered settings (defaults, file, env).
//! - [`ops`]: the `outbox` and `dlq` operator commands.
//! - [`startup`]: [`Application`] builds everything from settings and a bound listener and
//!   runs API, relay and consumers until a shutdown token is cancelled.

pub mod admin;
pub mod audit;
pub mod config;
pub mod identity;
pub mod ops;
pub mod startup;

pub use config::Settings;
pub use startup::Application;
