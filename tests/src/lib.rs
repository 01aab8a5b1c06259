//! Test support for Wallet Hub's integration and end-to-end tests (`tests/tests/`): every
//! test binary builds on this library, none of it ships.
//!
//! - [`app`]: [`spawn_app`] runs a whole service per test, with its own database, topics and
//!   consumer group, and returns a [`TestApp`] to drive it;
//! - [`binary`]: the workspace root and the service binary, for tests that run it;
//! - [`broker`]: creating topics, limiting their record size, and reading the records the
//!   service published;
//! - [`events`]: domain events and CloudEvents built as the service builds them;
//! - [`logs`]: capturing what the in-process service logs;
//! - [`contracts`]: every record the tests read that Wallet Hub published is checked
//!   against its schema and names it in `dataschema`;
//! - [`eventually`]: waiting for an asynchronous outcome, bounded by [`KAFKA_WAIT`].

pub mod app;
pub mod binary;
pub mod broker;
pub mod contracts;
pub mod events;
pub mod logs;

use std::time::Duration;

pub use app::{TestApp, Topics, spawn_app, spawn_app_with, start, test_settings};
pub use broker::{
    create_topics, header, limit_message_size, read_all_records, read_records, send_event,
};
pub use events::{cloud_event, deposit_event, volume_event};

/// Generous bound for anything that crosses Kafka; tests fail, not hang, past it.
pub const KAFKA_WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns Some or the Kafka wait runs out.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + KAFKA_WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
