//! Wallet Hub's HTTP API.
//!
//! - [`routing`]: every route and the middleware around them, in one place ([`router`]).
//! - [`error`]: [`ApiError`], the one error type, answered as RFC 9457 problem+json;
//!   [`problem_types`]: every problem `type`, its page, and the base URI it lives under.
//! - [`extract`]: JSON and path extractors whose rejections are `ApiError`s.
//! - [`grammar`]: the request grammar the document states and the handlers check.
//! - [`context`]: the per-request middleware and [`RequestContext`].
//! - [`caller`]: bearer-token authentication and who may do what.
//! - [`users`], [`wallets`], [`transfers`], [`holds`], [`notifications`], [`analytics`]:
//!   the routes.
//! - [`openapi`]: the contract, built with the routes from their `#[utoipa::path]`s.
//! - [`contracts`]: the event contracts: `/asyncapi.json` and the event schemas.
//! - [`pipeline`]: the one write pipeline of wallet commands (deposit, withdraw, transfer,
//!   freeze, unfreeze, close, and placing, capturing, voiding and expiring holds): claim keys, lock, decide ([`domain::decide`]), write, commit
//!   under the COMMIT rule, answer; a lone request is a batch of one.
//! - [`resources`]: how wallets and money movements are represented in answers.
//! - [`pagination`]: the one query and page shape of every list.
//! - [`preconditions`]: `ETag`, `If-None-Match` (304) and `If-Match` (412) on wallets.
//! - [`write`]: replies, `Idempotency-Key`s, and how the changes outside the pipeline
//!   (creating users and wallets) run: one transaction, retried on contention, idempotent,
//!   their events written to the outbox.
//! - [`limits`]: bounded work per request: request timeout, per-principal rate limits,
//!   load shedding of writes.
//! - [`server`]: the HTTP/1.1 server with a header read timeout and a connection limit.
//! - [`sweeper`]: records holds past their expiry as expired, through the pipeline, one
//!   instance at a time.
//!
//! Handlers never build SQL: every statement is in the `store` crate (the outbox's in
//! `outbox`). This crate depends on `domain`, `store`, `outbox`, `event-bindings` (the event contracts) and `telemetry` only.

pub mod analytics;
pub mod caller;
pub mod context;
pub mod contracts;
pub mod error;
pub mod extract;
pub mod grammar;
pub mod holds;
pub mod limits;
pub mod notifications;
pub mod openapi;
pub mod pagination;
pub mod pipeline;
pub mod preconditions;
pub mod problem_types;
pub mod resources;
pub mod routing;
pub mod server;
pub mod sweeper;
pub mod transfers;
pub mod users;
pub mod wallets;
pub mod write;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use serde::Deserialize;
use sqlx::PgPool;

pub use context::RequestContext;
pub use error::ApiError;
pub use routing::router;

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
    /// A connection that has not sent a whole request head this long after opening (or
    /// after its previous response) is closed: slow-loris clients and idle keep-alive
    /// connections alike.
    pub header_read_timeout_ms: NonZeroU64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: NonZeroUsize,
    /// Writes (non-GET requests) running at once; one more gets 503 `overloaded` at once.
    pub write_concurrency_limit: NonZeroUsize,
    /// What `Retry-After-Ms` (and, rounded up to seconds, `Retry-After`) advises after 503
    /// `overloaded`.
    pub overload_retry_after_ms: u64,
    /// Requests per second each principal may make, on average (0: no limit)...
    pub rate_limit_per_second: u32,
    /// ...and in a burst.
    pub rate_limit_burst: NonZeroU32,
    /// Withdrawals and transfers per second each principal may make (0: no limit)...
    pub money_out_rate_limit_per_second: u32,
    /// ...and in a burst.
    pub money_out_rate_limit_burst: NonZeroU32,
    /// Wallet commands go through the write pipeline's batching writer ([`pipeline`]):
    /// whatever waits while a batch commits forms the next one, in one transaction. Off:
    /// each request is a batch of one, in its own task (the same code).
    pub write_batching: bool,
    /// The most money movements one batch takes.
    pub write_batch_max: NonZeroUsize,
    /// Batches in flight at once (each holds one connection of the API's pool): more than
    /// one lets a batch run while another waits for its commit or for a row lock held
    /// elsewhere.
    pub write_batch_writers: NonZeroUsize,
    /// How long a fresh session asks what became of a COMMIT that failed, before its
    /// requests are answered 503 `outcome-unknown` ([`pipeline`]).
    pub commit_outcome_wait_ms: u64,
    /// How often the hold sweeper ([`sweeper`]) looks for holds past their expiry to record
    /// as expired (0: never; expiry is exact in every read and check without it).
    pub hold_sweep_interval_ms: u64,
    /// Problem `type` URIs are `<problem_base_url>/problems/<slug>`, each a page the API
    /// serves ([`problem_types`]); empty: the API's own address.
    pub problem_base_url: String,
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Wakes the relays after a write commits.
    pub waker: outbox::CommitWaker,
    pub idempotency_ttl_hours: u32,
    /// Checks bearer access tokens.
    pub verifier: auth::Verifier,
    /// `/asyncapi.json` and `/schemas/*`.
    pub event_contracts: contracts::EventContracts,
    /// Where every wallet command is written (batched or not: `api.write_batching`).
    pub pipeline: pipeline::Pipeline,
}
