//! Request headers that several operations share, documented once.

use utoipa::IntoParams;

/// The headers that make a `POST` safe to retry, read by [`crate::write::MaybeIdempotencyKey`]
/// (see [`crate::write`] for what the server does with them). An operation lists them as
/// `params(IdempotencyHeaders)`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeaders {
    /// Makes retries safe: the first answer to a key is stored for 24 h and replayed to
    /// the same caller for the same method, path and body
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}
