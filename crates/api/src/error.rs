//! `ApiError`: every way a request can fail, answered as RFC 9457 problem+json.
//!
//! Each kind has a stable `type` URI (clients match on it, never on `detail`), a title and
//! a status. A 500 says only that something went wrong and which correlation id to quote;
//! the cause is logged once, here, with its chain.

use std::error::Error as StdError;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{Refusal, UserId, WalletError};
use outbox::OutboxError;
use serde::Serialize;
use store::StoreError;

use crate::problem_types::{self, ProblemType};

/// The media type of every error answer (RFC 9457).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: malformed JSON, a malformed id in the path.
    #[error("{0}")]
    MalformedRequest(String),
    /// The request was read but its content is invalid.
    #[error("{0}")]
    Validation(String),
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// An amount of valid grammar that the wallet's currency cannot hold: more decimal
    /// places than its minor unit, or out of range.
    #[error("amount: {0}")]
    AmountNotRepresentable(#[source] domain::MoneyError),
    /// A command the domain refused (insufficient funds, wallet not active, ...).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// No bearer token, or one that is not valid (see [`crate::caller`]).
    #[error("{0}")]
    Unauthenticated(Unauthenticated),
    /// A valid token without the scope the operation needs.
    #[error("this operation needs the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("this principal already has a user")]
    AlreadyRegistered,
    #[error("the caller has no user yet; create it with POST /v1/users first")]
    NotRegistered,
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    /// `If-Match` named a version the wallet is no longer (or not yet) at.
    #[error("the wallet is at version {current}, not the one If-Match names; read it again")]
    PreconditionFailed { current: i64 },
    #[error("this Idempotency-Key was already used for a different request (path or body)")]
    IdempotencyKeyReuse,
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    IdempotencyInFlight,
    /// A serialization failure or deadlock; the request is retried before this surfaces.
    #[error("transaction conflict")]
    Contention(#[source] StoreError),
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("service temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// Too many writes in flight: refused at once instead of queued ([`crate::limits`]).
    #[error(
        "the service is at its limit of concurrent writes; retry after {} ms",
        .retry_after.as_millis()
    )]
    Overloaded { retry_after: Duration },
    /// The caller used up a rate limit ([`crate::limits`]).
    #[error(
        "rate limit `{}` exceeded ({} requests per second, bursts of {}); retry after {} ms",
        .0.policy, .0.per_second, .0.burst, .0.retry_after.as_millis()
    )]
    RateLimited(RateLimited),
    /// The request ran longer than `api.request_timeout_ms` and was abandoned.
    #[error("the request did not complete within {0} ms; retry it with the same Idempotency-Key")]
    Timeout(u64),
    /// The request timed out (and was answered [`ApiError::Timeout`]) before a task that
    /// commits for it (the batching writer) reached its commit: rolled back, nothing written.
    #[error("the request was abandoned at its timeout before it committed")]
    Abandoned,
    /// The COMMIT of the request's transaction got no answer and the database could not
    /// say in time whether it took effect ([`crate::pipeline`]): never run again.
    #[error(
        "the database lost the connection while committing this request and could not say in time whether it took effect; read the wallet's history before sending it again, and send money movements with an Idempotency-Key so that a retry is safe"
    )]
    OutcomeUnknown,
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn internal(error: impl StdError + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(error))
    }

    /// Outcomes of a request that ran (not of its validation): stored with its
    /// Idempotency-Key so that a retry gets the same answer.
    pub fn is_recorded_outcome(&self) -> bool {
        matches!(self, ApiError::Wallet(_) | ApiError::AlreadyRegistered)
    }

    /// `(status, type slug, title)`.
    fn kind(&self) -> &'static ProblemType {
        match self {
            ApiError::MalformedRequest(_) => &problem_types::MALFORMED_REQUEST,
            ApiError::Validation(_) => &problem_types::VALIDATION_ERROR,
            ApiError::NotFound { .. } => &problem_types::NOT_FOUND,
            ApiError::AmountNotRepresentable(_) => amount_not_representable(),
            ApiError::Wallet(error) => wallet_error_kind(error),
            ApiError::Unauthenticated(_) => &problem_types::INVALID_TOKEN,
            ApiError::InsufficientScope(_) => &problem_types::INSUFFICIENT_SCOPE,
            ApiError::AlreadyRegistered => &problem_types::USER_EXISTS,
            ApiError::NotRegistered => &problem_types::UNKNOWN_USER,
            ApiError::UnknownUser(_) => &problem_types::UNKNOWN_USER,
            ApiError::PreconditionFailed { .. } => &problem_types::PRECONDITION_FAILED,
            ApiError::IdempotencyKeyReuse => &problem_types::IDEMPOTENCY_KEY_REUSE,
            ApiError::IdempotencyInFlight => &problem_types::IDEMPOTENCY_IN_FLIGHT,
            ApiError::Contention(_) => &problem_types::SERVICE_UNAVAILABLE,
            ApiError::NoRoute => &problem_types::NO_SUCH_ROUTE,
            ApiError::MethodNotAllowed => &problem_types::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType => &problem_types::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => &problem_types::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => &problem_types::SERVICE_UNAVAILABLE,
            ApiError::Overloaded { .. } => &problem_types::OVERLOADED,
            ApiError::RateLimited(_) => &problem_types::RATE_LIMITED,
            ApiError::Timeout(_) | ApiError::Abandoned => &problem_types::REQUEST_TIMEOUT,
            ApiError::OutcomeUnknown => &problem_types::OUTCOME_UNKNOWN,
            ApiError::Internal(_) => &problem_types::INTERNAL_ERROR,
        }
    }
}

/// A command the domain refused: not found (also what a wallet of another owner is),
/// a changed version, an amount the currency cannot hold, or a rule.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(id) => ApiError::NotFound {
                resource: "wallet",
                id: id.to_string(),
            },
            Refusal::HoldNotFound(id) => ApiError::NotFound {
                resource: "hold",
                id: id.to_string(),
            },
            Refusal::VersionChanged { current } => ApiError::PreconditionFailed { current },
            Refusal::NotRepresentable(error) => ApiError::AmountNotRepresentable(error),
            // A bug, not the client's: logged with its chain, answered 500 without it.
            Refusal::Rule(error @ WalletError::Undecidable(_)) => ApiError::internal(error),
            Refusal::Rule(error) => ApiError::Wallet(error),
        }
    }
}

/// The one mapping of store failures: refusals by constraint become their problems;
/// serialization failures and deadlocks are retried ([`crate::write::execute`],
/// [`crate::pipeline`]); an
/// unavailable database is 503 (retry later); anything else is 500.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownUser(id) => ApiError::UnknownUser(id),
            StoreError::AlreadyRegistered => ApiError::AlreadyRegistered,
            StoreError::KeyInUse => ApiError::IdempotencyInFlight,
            error if error.is_contention() => ApiError::Contention(error),
            error if error.is_unavailable() => ApiError::Unavailable(Box::new(error)),
            error @ (StoreError::Corrupt { .. } | StoreError::Database(_)) => {
                ApiError::internal(error)
            }
        }
    }
}

/// Beginning, committing and acquiring connections fail like statements do.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

/// Writing to the outbox fails like the change it belongs to: a database error keeps its
/// class (contention is retried).
impl From<OutboxError> for ApiError {
    fn from(error: OutboxError) -> Self {
        match error {
            OutboxError::Insert { source, .. } | OutboxError::InsertMany { source, .. } => {
                source.into()
            }
            error @ OutboxError::Serialize { .. } => ApiError::internal(error),
        }
    }
}

fn amount_not_representable() -> &'static ProblemType {
    &problem_types::AMOUNT_NOT_REPRESENTABLE
}

fn wallet_error_kind(error: &WalletError) -> &'static ProblemType {
    match error {
        WalletError::InsufficientFunds { .. } | WalletError::InsufficientAvailable { .. } => {
            &problem_types::INSUFFICIENT_FUNDS
        }
        WalletError::HoldNotPending { .. } => &problem_types::HOLD_NOT_PENDING,
        WalletError::PendingHolds { .. } => &problem_types::PENDING_HOLDS,
        WalletError::CaptureExceedsHold { .. } => &problem_types::CAPTURE_EXCEEDS_HOLD,
        WalletError::InvalidExpiry => &problem_types::INVALID_EXPIRY,
        WalletError::CurrencyMismatch { .. } => &problem_types::CURRENCY_MISMATCH,
        WalletError::NotActive { .. } => &problem_types::WALLET_NOT_ACTIVE,
        WalletError::InvalidTransition { .. } => &problem_types::INVALID_STATUS_TRANSITION,
        WalletError::BalanceNotZero { .. } => &problem_types::BALANCE_NOT_ZERO,
        WalletError::SameWallet => &problem_types::SAME_WALLET,
        WalletError::Money(_) => amount_not_representable(),
        WalletError::InvalidName(_)
        | WalletError::NonPositiveAmount
        | WalletError::InvalidDescription => &problem_types::VALIDATION_ERROR,
        // Never built by a refusal that reaches a client as such (see `From<Refusal>`).
        WalletError::Undecidable(_) => &problem_types::INTERNAL_ERROR,
    }
}

/// RFC 9457 problem details (`application/problem+json`). Match on `type`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI of the error kind, under `api.problem_base_url`, e.g.
    /// `https://wallets.example.com/problems/insufficient-funds`; it resolves to a page
    /// saying what it means.
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    /// Human-readable; never parse it.
    detail: String,
}

impl ApiError {
    /// The status and problem+json body (logging the cause of a 5xx, once).
    pub fn problem(&self) -> (StatusCode, serde_json::Value) {
        let kind = self.kind();
        let status = kind.status;
        let detail = match self {
            ApiError::Internal(source) | ApiError::Unavailable(source) => {
                tracing::error!(
                    error = &**source as &dyn StdError,
                    status = status.as_u16(),
                    "request failed"
                );
                GENERIC_DETAIL.to_owned()
            }
            ApiError::Contention(source) => {
                tracing::error!(
                    error = source as &dyn StdError,
                    "request failed: contention retries exhausted"
                );
                GENERIC_DETAIL.to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            type_uri: format!("{}{}", problem_types::TYPE_PATH, kind.slug),
            title: kind.title,
            status: status.as_u16(),
            detail,
        };
        (status, serde_json::to_value(problem).unwrap_or_default())
    }
}

const GENERIC_DETAIL: &str =
    "The request could not be completed. Quote the X-Correlation-Id header when reporting this.";

/// A problem+json response from a status and body (also used to replay stored answers).
pub fn problem_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.problem();
        let mut response = problem_response(status, body);
        // RFC 6750 section 3: what a bearer client needs to know to try again.
        let challenge = match &self {
            ApiError::Unauthenticated(Unauthenticated::Missing) => {
                Some("Bearer realm=\"wallet-hub\"".to_owned())
            }
            ApiError::Unauthenticated(Unauthenticated::Invalid) => {
                Some("Bearer realm=\"wallet-hub\", error=\"invalid_token\"".to_owned())
            }
            ApiError::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"wallet-hub\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        match &self {
            ApiError::Overloaded { retry_after } => retry_headers(&mut response, *retry_after),
            ApiError::RateLimited(limited) => limited.headers(&mut response),
            _ => {}
        }
        response
    }
}

/// `Retry-After-Ms`: the wait in milliseconds, next to `Retry-After`, whose RFC 9110 form
/// is whole seconds (too coarse for a refusal that clears in a fraction of one).
pub static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
/// `RateLimit-Policy` and `RateLimit` of the IETF draft "RateLimit header fields for HTTP"
/// (draft-ietf-httpapi-ratelimit-headers, structured-field form).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `Retry-After` in whole seconds, rounded up, and `Retry-After-Ms`.
fn retry_headers(response: &mut Response, wait: Duration) {
    let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    let headers = response.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(millis.div_ceil(1000)),
    );
    headers.insert(RETRY_AFTER_MS.clone(), HeaderValue::from(millis));
}

/// Which limit a caller exceeded, and when it may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// The policy's name in the `RateLimit*` headers: `default` or `money-out`.
    pub policy: &'static str,
    pub per_second: u32,
    pub burst: u32,
    pub retry_after: Duration,
}

impl RateLimited {
    /// `RateLimit-Policy: "money-out";q=20;w=2` (the burst, and the seconds the rate takes
    /// to refill it), `RateLimit: "money-out";r=0;t=1` (nothing left; seconds until a
    /// request is allowed again), `Retry-After` and `Retry-After-Ms`.
    fn headers(&self, response: &mut Response) {
        retry_headers(response, self.retry_after);
        let window = self.burst.div_ceil(self.per_second.max(1));
        let reset = self.retry_after.as_millis().div_ceil(1000).max(1);
        let policy = format!("\"{}\";q={};w={window}", self.policy, self.burst);
        let remaining = format!("\"{}\";r=0;t={reset}", self.policy);
        let headers = response.headers_mut();
        for (name, value) in [(&RATELIMIT_POLICY, policy), (&RATELIMIT, remaining)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), value);
            }
        }
    }
}

/// Why a request is not authenticated. The detail never says more than this: which check
/// a token failed is logged, not told to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("this operation needs an `Authorization: Bearer` access token")]
    Missing,
    #[error("the access token is not valid")]
    Invalid,
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedRequest(e.body_text()),
            JsonRejection::JsonDataError(e) => ApiError::Validation(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::MalformedRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::MalformedRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::MalformedRequest(rejection.body_text())
    }
}

pub async fn not_found_fallback() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::MethodNotAllowed
}
