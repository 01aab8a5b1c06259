//! The problem answers of the operations, documented once each.
//!
//! Every one is an `application/problem+json` [`Problem`] whose description lists the problem
//! `type` slugs it can carry (see [`crate::error`] for the mapping from errors). An operation
//! names the ones it can answer in its `responses(...)`; a status appears once per operation,
//! so where operations differ in what a 409 or 422 means, each meaning has its own type.

use utoipa::IntoResponses;

use crate::error::{PROBLEM_JSON, Problem};

/// A malformed id in the path, query, JSON body or `Idempotency-Key`.
#[derive(Debug, IntoResponses)]
#[response(status = 400, description = "malformed-request", content_type = PROBLEM_JSON)]
pub struct Malformed(pub Problem);

/// The resource named in the path (or, for a transfer, in the body) does not exist.
#[derive(Debug, IntoResponses)]
#[response(status = 404, description = "not-found", content_type = PROBLEM_JSON)]
pub struct NotFound(pub Problem);

/// A valid access token without the scope the operation needs.
#[derive(Debug, IntoResponses)]
#[response(status = 403, description = "insufficient-scope", content_type = PROBLEM_JSON)]
pub struct Forbidden(pub Problem);

/// What reading a JSON request body can refuse.
#[derive(Debug, IntoResponses)]
pub enum BodyRejected {
    #[response(status = 413, description = "payload-too-large", content_type = PROBLEM_JSON)]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "unsupported-media-type",
        content_type = PROBLEM_JSON
    )]
    NotJson(Problem),
}

/// What any operation can answer when the server cannot complete it.
#[derive(Debug, IntoResponses)]
pub enum ServerErrors {
    /// The caller's rate limit is used up: `RateLimit-Policy`, `RateLimit`, `Retry-After`
    /// (seconds) and `Retry-After-Ms` say which limit and when to try again.
    #[response(status = 429, description = "rate-limited", content_type = PROBLEM_JSON)]
    RateLimited(Problem),
    /// Retry later: `overloaded` (too many writes in flight, refused at once; `Retry-After`
    /// and `Retry-After-Ms` say when), `request-timeout` (ran longer than the request
    /// timeout), `service-unavailable` (the database cannot do the work now),
    /// `outcome-unknown` (a change's COMMIT got no answer and its outcome could not be
    /// learned in time: read before sending it again).
    #[response(
        status = 503,
        description = "service-unavailable, overloaded, request-timeout, outcome-unknown",
        content_type = PROBLEM_JSON
    )]
    Unavailable(Problem),
    #[response(status = 500, description = "internal-error", content_type = PROBLEM_JSON)]
    Internal(Problem),
}

/// `If-Match` named another version of the wallet ([`crate::preconditions`]).
#[derive(Debug, IntoResponses)]
#[response(status = 412, description = "precondition-failed", content_type = PROBLEM_JSON)]
pub struct VersionChanged(pub Problem);

/// 409 of creating a user.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "user-exists, idempotency-in-flight",
    content_type = PROBLEM_JSON
)]
pub struct UserExists(pub Problem);

/// 409 of a change whose only conflict is a retry racing its first attempt.
#[derive(Debug, IntoResponses)]
#[response(status = 409, description = "idempotency-in-flight", content_type = PROBLEM_JSON)]
pub struct InFlight(pub Problem);

/// 409 of moving money.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "wallet-not-active, idempotency-in-flight",
    content_type = PROBLEM_JSON
)]
pub struct WalletNotActive(pub Problem);

/// 409 of freezing or unfreezing a wallet.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "invalid-status-transition, idempotency-in-flight",
    content_type = PROBLEM_JSON
)]
pub struct StatusConflict(pub Problem);

/// 409 of closing a wallet.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "balance-not-zero, pending-holds, invalid-status-transition, idempotency-in-flight",
    content_type = PROBLEM_JSON
)]
pub struct CloseConflict(pub Problem);

/// 422 of a request whose only rule is its content's.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "validation-error, idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct Invalid(pub Problem);

/// 422 of a change with no content of its own: only its `Idempotency-Key` can be wrong.
#[derive(Debug, IntoResponses)]
#[response(status = 422, description = "idempotency-key-reuse", content_type = PROBLEM_JSON)]
pub struct KeyReused(pub Problem);

/// 422 of a deposit.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "validation-error, amount-not-representable, idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidDeposit(pub Problem);

/// 422 of creating a wallet.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "validation-error, unknown-user, idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidWallet(pub Problem);

/// 422 of a withdrawal.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "insufficient-funds, amount-not-representable, validation-error, \
                   idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidWithdrawal(pub Problem);

/// 422 of a transfer.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "insufficient-funds, currency-mismatch, same-wallet, amount-not-representable, \
                   validation-error, idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidTransfer(pub Problem);

/// 409 of capturing or voiding a hold.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "hold-not-pending, wallet-not-active, idempotency-in-flight",
    content_type = PROBLEM_JSON
)]
pub struct HoldConflict(pub Problem);

/// 422 of placing a hold.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "insufficient-funds, invalid-expiry, currency-mismatch, same-wallet, \
                   amount-not-representable, validation-error, idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidHold(pub Problem);

/// 422 of capturing a hold.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "capture-exceeds-hold, amount-not-representable, validation-error, \
                   idempotency-key-reuse",
    content_type = PROBLEM_JSON
)]
pub struct InvalidCapture(pub Problem);
