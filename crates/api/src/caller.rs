//! Who is calling, and what they may do.
//!
//! [`authenticate`] guards every `/v1` route: a request without a bearer token, or with one
//! the [`auth::Verifier`] refuses, is answered 401 before any handler runs (so it reads and
//! changes nothing); a valid one puts its [`Caller`] in the request's extensions.
//!
//! The rules (docs/security.md has the table):
//! - a user reaches only what it owns: anything of another user is 404, exactly like an
//!   id that does not exist, so ids are no oracle ([`Caller::may_read`],
//!   [`Caller::owns`]);
//! - money enters only with [`DEPOSIT_SCOPE`] (the payment processor's client);
//! - [`ADMIN_SCOPE`] (risk and operations) freezes, unfreezes and reads anything.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{Actor, UserId};
use sqlx::PgConnection;

use crate::error::{ApiError, Unauthenticated};

/// Deposits: the only way money enters a wallet.
pub const DEPOSIT_SCOPE: &str = "wallets:deposit";
/// Freeze and unfreeze any wallet; read any user, wallet, history, activity.
pub const ADMIN_SCOPE: &str = "wallets:admin";
/// Capture, void and read any wallet's holds (a merchant's or processor's client).
pub const CAPTURE_SCOPE: &str = "wallets:capture";

/// The authenticated principal of a request.
#[derive(Debug, Clone)]
pub struct Caller(auth::Principal);

impl From<auth::Principal> for Caller {
    /// The caller a verified token names.
    fn from(principal: auth::Principal) -> Self {
        Caller(principal)
    }
}

impl Caller {
    /// The principal as the domain records it (ledger, status changes, events).
    pub fn actor(&self) -> Actor {
        Actor {
            issuer: self.0.issuer.clone(),
            subject: self.0.subject.clone(),
        }
    }

    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope))
        }
    }

    /// Whether the caller's token grants `scope`.
    pub fn has(&self, scope: &'static str) -> bool {
        self.0.has_scope(scope)
    }

    pub fn is_admin(&self) -> bool {
        self.0.has_scope(ADMIN_SCOPE)
    }

    /// Whether a user bound to `owner` (its principal, as read with the wallet) was
    /// registered by this caller; the pure form of [`Caller::owns`].
    pub fn is_owner(&self, owner: Option<&Actor>) -> bool {
        owner.is_some_and(|principal| self.is(principal))
    }

    /// Whether `principal` is this caller.
    fn is(&self, principal: &Actor) -> bool {
        principal.issuer == self.0.issuer && principal.subject == self.0.subject
    }

    /// Whether the user `owner` was registered by this caller.
    pub async fn owns(&self, conn: &mut PgConnection, owner: UserId) -> Result<bool, ApiError> {
        let bound = store::users::owner(conn, owner).await?.flatten();
        Ok(bound.is_some_and(|principal| self.is(&principal)))
    }

    /// Whether the user `owner` exists and this caller may read what it owns: its owner,
    /// or an admin. One query.
    pub async fn may_read(&self, conn: &mut PgConnection, owner: UserId) -> Result<bool, ApiError> {
        Ok(match store::users::owner(conn, owner).await? {
            None => false,
            Some(bound) => self.is_admin() || bound.is_some_and(|principal| self.is(&principal)),
        })
    }

    /// The user this caller registered; [`ApiError::NotRegistered`] if none.
    pub async fn user(&self, conn: &mut PgConnection) -> Result<UserId, ApiError> {
        store::users::registered_by(conn, &self.actor())
            .await?
            .ok_or(ApiError::NotRegistered)
    }

    /// The scope of this caller's idempotency keys: issuer and subject, length-prefixed so
    /// that no two principals share one.
    pub fn idempotency_scope(&self) -> String {
        format!(
            "{}:{}{}",
            self.0.issuer.len(),
            self.0.issuer,
            self.0.subject
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only reachable behind `authenticate`; without it, nobody is authenticated.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated(Unauthenticated::Missing))
    }
}

/// A caller with the `wallets:admin` scope: as an extractor, a caller without it is refused
/// (403) before anything else of the request is read, so an endpoint's own parameters
/// never tell a stranger more than "not for you".
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(ADMIN_SCOPE)?;
        Ok(Admin(caller))
    }
}

/// What [`authenticate`] needs: the verifier, and the budget of refusals it logs.
#[derive(Debug, Clone)]
pub struct Authenticator {
    verifier: auth::Verifier,
    /// Anyone can send refused tokens as fast as they like: each is counted
    /// (`auth_refused_total`), but only [`REFUSALS_LOGGED_PER_SECOND`] a second (after a
    /// burst of [`REFUSALS_LOGGED_BURST`]) are logged.
    refusal_log: std::sync::Arc<governor::DefaultDirectRateLimiter>,
}

/// Refused tokens logged per second, on average...
pub const REFUSALS_LOGGED_PER_SECOND: u32 = 1;
/// ...after a burst of this many.
pub const REFUSALS_LOGGED_BURST: u32 = 10;

impl Authenticator {
    pub fn new(verifier: auth::Verifier) -> Self {
        let quota = governor::Quota::per_second(nonzero(REFUSALS_LOGGED_PER_SECOND))
            .allow_burst(nonzero(REFUSALS_LOGGED_BURST));
        Self {
            verifier,
            refusal_log: std::sync::Arc::new(governor::RateLimiter::direct(quota)),
        }
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}

/// The middleware: checks the bearer token and records the [`Caller`], or answers 401.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return ApiError::Unauthenticated(Unauthenticated::Missing).into_response();
    };
    match authenticator.verifier.verify(token).await {
        Ok(principal) => {
            request.extensions_mut().insert(Caller::from(principal));
            next.run(request).await
        }
        Err(error) => {
            metrics::counter!(
                telemetry::metrics::AUTH_REFUSED_TOTAL,
                "reason" => error.reason()
            )
            .increment(1);
            // Which check failed is for the operators: the token itself is never logged,
            // and what its sender chose (kid, alg, typ) only bounded and escaped
            // (`auth::Untrusted`). Sampled: the metric counts every one.
            if authenticator.refusal_log.check().is_ok() {
                tracing::info!(reason = error.reason(), error = %error, "access token refused");
            }
            ApiError::Unauthenticated(Unauthenticated::Invalid).into_response()
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
