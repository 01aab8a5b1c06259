//! Wallet Hub's integration and end-to-end suite: one test binary, real PostgreSQL and
//! Kafka (started by `scripts/test`). Every test builds its own app with its own database,
//! topics and consumer group, so tests run in parallel without seeing each other. What the
//! tests share (`spawn_app()` and friends) is this crate's library, `wallet_hub_tests`.

mod admission;
mod analytics_store;
mod api_validation;
mod audit;
mod authz;
mod batching;
mod concurrency;
mod conformance;
mod consumer;
mod contracts;
mod dlq;
mod example_consumer;
mod health;
mod holds;
mod idempotency;
mod kafka_e2e;
mod limits;
mod metrics;
mod migrations;
mod model;
mod pagination;
mod pipeline;
mod preconditions;
mod problem_pages;
mod rebuild;
mod relay;
mod roles;
mod service;
mod store_errors;
mod streams;
mod topics;
mod wallet_api;
mod wallet_events;

/// Runs `cases` cases of `strategy` through `test` (which drives a real service) and panics
/// with proptest's smallest failing input, shrunk at most 64 times.
fn check_property<S: proptest::strategy::Strategy>(
    cases: u32,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), proptest::test_runner::TestCaseError>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        max_shrink_iters: 64,
        ..proptest::test_runner::Config::default()
    });
    if let Err(failure) = runner.run(strategy, test) {
        panic!("{failure}");
    }
}
