//! Running a state change: one database transaction, retried on serialization failures
//! and deadlocks, and made idempotent by the `Idempotency-Key` header.
//!
//! Idempotency follows Stripe: the first answer to a key (status and body), scoped to the
//! authenticated caller, is stored in the same transaction as the change, for
//! `api.idempotency_ttl_hours`, together with the request it answered (method, concrete
//! path with its ids, hash of the whole body). A retry of that same request gets the
//! stored answer (`Idempotent-Replayed: true`) and changes nothing; the key on another
//! path or with another body is 422 `idempotency-key-reuse`, never a replay of another
//! resource's answer; a retry while the first is still running is 409. Requests that
//! fail validation never reach this point, so they are not stored.
//!
//! The change's domain events go to the outbox in the same transaction ([`publish`]);
//! after a commit the relays are woken ([`outbox::CommitWaker`]), outside the transaction.

use std::time::Duration;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backon::{BackoffBuilder, ExponentialBuilder};
use domain::{Appended, DomainEvent};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use sqlx::{Acquire, PgConnection};
use store::idempotency::{self, Claim};
use telemetry::TraceHeaders;

use crate::AppState;
use crate::caller::Caller;
use crate::error::{ApiError, problem_response};

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub location: Option<String>,
}

impl Reply {
    pub fn created(
        body: impl serde::Serialize,
        location: Option<String>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            status: StatusCode::CREATED,
            body: serde_json::to_value(body).map_err(ApiError::internal)?,
            location,
        })
    }

    pub fn ok(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status: StatusCode::OK,
            body: serde_json::to_value(body).map_err(ApiError::internal)?,
            location: None,
        })
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = if self.status.is_client_error() || self.status.is_server_error() {
            problem_response(self.status, self.body)
        } else {
            (self.status, Json(self.body)).into_response()
        };
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The client's `Idempotency-Key` and its scope (caller and route), if it sent a key.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    caller: String,
    /// `POST /v1/wallets/0192…/deposits`: the method and the concrete path, ids included,
    /// so a key used for one wallet can never answer for another.
    route: String,
    key: String,
}

/// Extracts the optional `Idempotency-Key` (400 when malformed).
#[derive(Debug, Clone)]
pub struct MaybeIdempotencyKey(pub Option<IdempotencyKey>);

impl IdempotencyKey {
    pub(crate) fn as_store_key(&self) -> idempotency::Key<'_> {
        idempotency::Key {
            caller: &self.caller,
            route: &self.route,
            key: &self.key,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeIdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let route = format!("{} {}", parts.method, parts.uri.path());
        idempotency_key(&parts.headers, &caller, route).map(MaybeIdempotencyKey)
    }
}

fn idempotency_key(
    headers: &HeaderMap,
    caller: &Caller,
    route: String,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    // A value that is not even text breaks the grammar too.
    let key = value.to_str().unwrap_or("\u{0}");
    IdempotencyKey::new(caller, route, key).map(Some)
}

impl IdempotencyKey {
    /// `key` of `caller`, for the request `route` (method and concrete path); 400 unless it
    /// follows the grammar ([`crate::grammar::idempotency_key`]).
    pub fn new(caller: &Caller, route: String, key: &str) -> Result<Self, ApiError> {
        let key = crate::grammar::idempotency_key(key)?;
        Ok(IdempotencyKey {
            caller: caller.idempotency_scope(),
            route,
            key: key.to_owned(),
        })
    }
}

/// What one request asks the runner for.
#[derive(Debug)]
pub struct Write<'a> {
    pub key: Option<IdempotencyKey>,
    /// The request body (hashed to recognise a retry of the same request).
    pub request: &'a serde_json::Value,
}

/// The change itself, run inside the transaction; may run more than once (retries).
pub type Operation<'o> = dyn for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<Reply, ApiError>>
    + Send
    + Sync
    + 'o;

/// Gives a closure the higher-ranked signature of an [`Operation`].
pub fn operation<F>(f: F) -> F
where
    F: for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<Reply, ApiError>> + Send + Sync,
{
    f
}

/// Runs `operation` in a transaction (see the module docs); retries contention with
/// bounded, jittered backoff, so serialization failures and deadlocks never reach the client.
pub async fn execute(
    state: &AppState,
    write: Write<'_>,
    operation: &Operation<'_>,
) -> Result<Response, ApiError> {
    let hash = request_hash(write.request);
    let mut delays = contention_backoff().take(8);
    loop {
        match attempt(state, &write, &hash, operation).await {
            Err(ApiError::Contention(error)) => match delays.next() {
                Some(delay) => {
                    tracing::debug!(
                        error = &error as &dyn std::error::Error,
                        ?delay,
                        "transaction conflict; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => return Err(ApiError::Contention(error)),
            },
            other => return other,
        }
    }
}

/// The pauses between tries of a transaction that lost to contention (a serialization
/// failure, a deadlock): 5 ms doubling to 200 ms, jittered, unbounded (callers bound them).
pub(crate) fn contention_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(200))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The hash that recognises a retry of the same request (its whole body).
pub(crate) fn request_hash(request: &serde_json::Value) -> Vec<u8> {
    Sha256::digest(request.to_string().as_bytes()).to_vec()
}

async fn attempt(
    state: &AppState,
    write: &Write<'_>,
    hash: &[u8],
    operation: &Operation<'_>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let Some(key) = &write.key else {
        let reply = operation(&mut tx).await?;
        crate::limits::committing()?;
        tx.commit().await?;
        state.waker.wake();
        return Ok(reply.into_response());
    };
    let key = key.as_store_key();

    match idempotency::claim(&mut tx, key, hash, state.idempotency_ttl_hours).await? {
        Claim::Claimed => {}
        Claim::Answered(stored) if stored.route != key.route || stored.request_hash != hash => {
            return Err(ApiError::IdempotencyKeyReuse);
        }
        Claim::Answered(stored) => return replay(stored),
    }
    // Run the change in a savepoint: a refused command is rolled back, but its answer is
    // still stored with the key.
    let mut savepoint = tx.begin().await?;
    let reply = match operation(&mut savepoint).await {
        Ok(reply) => {
            savepoint.commit().await?;
            reply
        }
        Err(error) if error.is_recorded_outcome() => {
            savepoint.rollback().await?;
            let (status, body) = error.problem();
            Reply {
                status,
                body,
                location: None,
            }
        }
        Err(error) => return Err(error),
    };
    idempotency::record_answer(
        &mut tx,
        key,
        reply.status.as_u16(),
        &reply.body,
        reply.location.as_deref(),
    )
    .await?;
    crate::limits::committing()?;
    tx.commit().await?;
    state.waker.wake();
    Ok(reply.into_response())
}

/// The stored answer of an earlier request with the same key, marked as a replay.
pub(crate) fn replay(stored: idempotency::StoredAnswer) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(stored.status).map_err(ApiError::internal)?;
    let mut response = Reply {
        status,
        body: stored.body,
        location: stored.location,
    }
    .into_response();
    response
        .headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    Ok(response)
}

/// Writes `event` (of no wallet's stream) to the outbox in the change's transaction, with
/// the trace context of the current request; a database error keeps its class, so
/// contention is retried.
pub(crate) async fn publish(conn: &mut PgConnection, event: DomainEvent) -> Result<(), ApiError> {
    outbox::publish(conn, &event, &TraceHeaders::current(), None).await?;
    Ok(())
}

/// Appends a wallet's event to its stream and writes it to the outbox with its sequence,
/// in the change's transaction (as [`publish`] does).
pub(crate) async fn append(conn: &mut PgConnection, appended: &Appended) -> Result<(), ApiError> {
    store::streams::append_many(conn, &[appended], false).await?;
    outbox::publish(
        conn,
        &appended.event,
        &TraceHeaders::current(),
        Some(appended.sequence),
    )
    .await?;
    Ok(())
}

/// A client span around one database transaction (OpenTelemetry database conventions);
/// the outbox row written inside it carries this span's context.
pub(crate) fn db_transaction_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        otel.name = format!("transaction {operation}"),
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}
