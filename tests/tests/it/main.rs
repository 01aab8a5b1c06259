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
mod health;
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
mod relay;
mod roles;
mod service;
mod store_errors;
mod topics;
mod wallet_api;
