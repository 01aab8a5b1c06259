//! The transactional outbox.
//!
//! - [`publisher`]: [`publish`] and [`publish_many`] write events as `outbox` rows inside
//!   the caller's transaction, so an event exists if and only if its state change committed.
//! - [`store`]: the relay's queries over `outbox`.
//! - [`audit`]: reconciliation queries for `wallet-hub audit` (outbox against the ledger,
//!   the Kafka topics and the activity consumer's inbox).
//! - [`ops`]: operator actions: status, parked rows, redrive, replay.
//! - [`relay`]: [`Relay`] publishes pending rows to Kafka as CloudEvents, in id order, and
//!   marks a row sent only after its delivery report succeeded (one module per job inside).
//! - [`wake`]: [`CommitWaker`] wakes relays after writers' commits: this process's
//!   leading relay directly, any other through LISTEN/NOTIFY.

pub mod audit;
pub mod ops;
pub mod publisher;
pub mod relay;
pub mod store;
pub mod wake;

pub use publisher::{OUTBOX_CHANNEL, OutboxError, Outgoing, publish, publish_many};
pub use relay::{Relay, RelayConfig, RelayError, RelayState, RelayStatus};
pub use wake::{CommitWaker, LocalWake};
