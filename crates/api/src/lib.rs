//! Wallet Hub's HTTP API.
//!
//! - [`router`] assembles the routes with the request-context middleware (correlation id,
//!   W3C trace continuation), body limit and problem+json fallbacks.
//! - [`error`]: [`ApiError`], the one error type, answered as RFC 9457 problem+json.
//! - [`extract`]: JSON and path extractors whose rejections are `ApiError`s.
//! - [`context`]: the per-request middleware and [`RequestContext`].
//! - [`caller`]: bearer-token authentication and who may do what.
//! - [`users`], [`wallets`], [`transfers`], [`notifications`]: the routes.
//! - [`openapi`]: the contract, built with the routes from their `#[utoipa::path]`s.
//! - [`contracts`]: the event contracts: `/asyncapi.json` and the event schemas.
//! - [`write`]: how a change runs: one transaction, retried on contention, idempotent, its
//!   events written to the outbox.
//!
//! Handlers never build SQL: every statement is in the `store` crate (the outbox's in
//! `outbox`). This crate depends on `domain`, `store`, `outbox`, `event-bindings` (the event contracts) and `telemetry` only.

pub mod caller;
pub mod context;
pub mod contracts;
pub mod error;
pub mod extract;
pub mod notifications;
pub mod openapi;
pub mod transfers;
pub mod users;
pub mod wallets;
pub mod write;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use outbox::DomainEventPublisher;
use serde::Deserialize;
use sqlx::PgPool;

pub use context::RequestContext;
pub use error::ApiError;

/// `[api]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: usize,
    /// A request still running after this long gets 503 (and its transaction rolls back).
    pub request_timeout_ms: u64,
    /// How long the answer to an `Idempotency-Key` is kept.
    pub idempotency_ttl_hours: u32,
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub publisher: DomainEventPublisher,
    /// Wakes the relays after a write commits.
    pub waker: outbox::CommitWaker,
    pub idempotency_ttl_hours: u32,
    /// Checks bearer access tokens.
    pub verifier: auth::Verifier,
    /// `/asyncapi.json` and `/schemas/*`.
    pub event_contracts: contracts::EventContracts,
}

/// The whole API.
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    openapi::router(state.verifier.clone())
        .merge(contracts::router())
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(axum::middleware::from_fn(context::request_context))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .with_state(state)
}
