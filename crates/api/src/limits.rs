//! Bounded work per request: what the API refuses at once instead of queueing.
//!
//! - [`deadline`]: a request still running after `api.request_timeout_ms` is abandoned
//!   (its transaction rolls back) and answered 503 `request-timeout`, unless it is already
//!   committing ([`committing`]): then the answer waits for the commit, so a change that
//!   committed is never answered with an error (the database's own timeouts bound that
//!   wait).
//! - [`rate_limit`]: each authenticated principal (issuer and subject) has a budget of
//!   requests (GCRA, crate `governor`): `default` for every request, and a stricter
//!   `money-out` for withdrawals, transfers, holds and captures. Past it: 429 `rate-limited` with
//!   `RateLimit-Policy`, `RateLimit`, `Retry-After` and `Retry-After-Ms`.
//! - [`shed_writes`]: at most `api.write_concurrency_limit` writes (any method but GET, HEAD,
//!   OPTIONS) run at once; one more is answered 503 `overloaded` with `Retry-After` and
//!   `Retry-After-Ms` at once, before it touches the database, so it changes nothing.
//!   A semaphore's `try_acquire` rather than tower's `load_shed` + `concurrency_limit`:
//!   the limit covers only the write methods of the routes, and the refusal is an
//!   [`ApiError`] like every other.
//!
//! Order (outermost first, as [`crate::routing`] layers them): request context, timeout,
//! authentication, rate limit, shedding, handler. An unauthenticated request never takes a
//! write slot, and a principal over its rate takes none either.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::ApiConfig;
use crate::caller::Caller;
use crate::error::{ApiError, RateLimited};

/// Routes whose POST moves money out of a wallet (or reserves it to): the `money-out`
/// policy applies.
const MONEY_OUT_ROUTES: [&str; 4] = [
    "/v1/wallets/{id}/withdrawals",
    "/v1/transfers",
    "/v1/wallets/{id}/holds",
    "/v1/holds/{id}/capture",
];

/// Forget principals idle long enough to be back at a full budget, every this many checks.
const RETAIN_EVERY: u64 = 4096;

/// The API's limits, shared by every request.
#[derive(Debug)]
pub struct Limits {
    writes: Arc<Semaphore>,
    retry_after: Duration,
    default: Option<Policy>,
    money_out: Option<Policy>,
}

/// One rate-limit policy: a keyed GCRA limiter and how the headers describe it.
#[derive(Debug)]
struct Policy {
    name: &'static str,
    per_second: NonZeroU32,
    burst: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl Policy {
    /// `None` when `per_second` is 0 (the policy is off).
    fn new(name: &'static str, per_second: u32, burst: NonZeroU32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Self {
            name,
            per_second,
            burst,
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, principal: &String) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(principal).map_err(|not_until| {
            ApiError::RateLimited(RateLimited {
                policy: self.name,
                per_second: self.per_second.get(),
                burst: self.burst.get(),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
        })
    }
}

impl Limits {
    pub fn new(config: &ApiConfig) -> Self {
        Self {
            writes: Arc::new(Semaphore::new(config.write_concurrency_limit.get())),
            retry_after: Duration::from_millis(config.overload_retry_after_ms),
            default: Policy::new(
                "default",
                config.rate_limit_per_second,
                config.rate_limit_burst,
            ),
            money_out: Policy::new(
                "money-out",
                config.money_out_rate_limit_per_second,
                config.money_out_rate_limit_burst,
            ),
        }
    }
}

/// Whether a request may still be abandoned by [`deadline`] or is committing: decided once,
/// by whichever comes first, so a request is never both answered 503 and committed, even
/// when another task (the batching writer) commits it.
#[derive(Debug, Clone, Default)]
pub struct Commitment(Arc<AtomicU8>);

const RUNNING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

impl Commitment {
    /// Claims the commit: true unless the request was already abandoned (then it must not
    /// run). Idempotent.
    pub fn begin(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Gives a claimed commit back (the batch it was in rolls back and runs again): the
    /// request's timeout applies again.
    pub fn resume(&self) {
        let _ = self
            .0
            .compare_exchange(COMMITTING, RUNNING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Whether the request was abandoned (answered 503).
    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }

    /// Abandons the request: true unless its commit has begun.
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

tokio::task_local! {
    /// The current request's [`Commitment`], set by [`deadline`].
    static CURRENT: Commitment;
}

/// The current request's [`Commitment`], to hand to another task that commits for it;
/// `None` outside a request.
pub fn commitment() -> Option<Commitment> {
    CURRENT.try_with(Commitment::clone).ok()
}

/// Claims the commit for the current request, right before the COMMIT: from then on
/// [`deadline`] waits for its answer. [`ApiError::Abandoned`] when the request was answered
/// 503 already (possible only when another task commits for it): roll back instead.
/// Outside a request there is nothing to claim.
pub fn committing() -> Result<(), ApiError> {
    match commitment() {
        Some(commitment) if !commitment.begin() => Err(ApiError::Abandoned),
        _ => Ok(()),
    }
}

/// Runs `work` (in another task than the request's) as the request `commitment` belongs
/// to, so [`committing`] claims that request's commit.
pub async fn acting_for<F: Future>(commitment: Option<Commitment>, work: F) -> F::Output {
    match commitment {
        Some(commitment) => CURRENT.scope(commitment, work).await,
        None => work.await,
    }
}

/// The middleware of `api.request_timeout_ms` (see the module docs).
///
/// When the deadline fires, either the request's commit has begun (then its answer is
/// waited for) or it is abandoned: dropping the handler rolls its transaction back, and a
/// writer that has not taken it yet skips it.
pub async fn deadline(State(timeout_ms): State<u64>, request: Request, next: Next) -> Response {
    let commitment = Commitment::default();
    let response = CURRENT.scope(commitment.clone(), next.run(request));
    tokio::pin!(response);
    tokio::select! {
        response = &mut response => response,
        () = tokio::time::sleep(Duration::from_millis(timeout_ms)) => {
            if commitment.abandon() {
                tracing::warn!(timeout_ms, "request timed out");
                ApiError::Timeout(timeout_ms).into_response()
            } else {
                tracing::warn!(timeout_ms, "request over its time while committing; answering once the commit ends");
                response.await
            }
        }
    }
}

/// The middleware of the rate limits (behind authentication: it needs the [`Caller`]).
pub async fn rate_limit(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(principal) = request
        .extensions()
        .get::<Caller>()
        .map(Caller::idempotency_scope)
    else {
        return next.run(request).await;
    };
    let money_out = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| MONEY_OUT_ROUTES.contains(&path.as_str()));
    let policies = [
        limits.default.as_ref(),
        limits.money_out.as_ref().filter(|_| money_out),
    ];
    for policy in policies.into_iter().flatten() {
        if let Err(refused) = policy.check(&principal) {
            metrics::counter!(
                telemetry::metrics::HTTP_REQUESTS_REFUSED_TOTAL,
                "reason" => policy.name
            )
            .increment(1);
            return refused.into_response();
        }
    }
    next.run(request).await
}

/// The middleware of the write concurrency limit.
pub async fn shed_writes(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let Ok(_permit) = Arc::clone(&limits.writes).try_acquire_owned() else {
        metrics::counter!(
            telemetry::metrics::HTTP_REQUESTS_REFUSED_TOTAL,
            "reason" => "overloaded"
        )
        .increment(1);
        return ApiError::Overloaded {
            retry_after: limits.retry_after,
        }
        .into_response();
    };
    next.run(request).await
}
