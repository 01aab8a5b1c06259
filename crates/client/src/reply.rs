//! [`Reply`]: a successful answer with the headers a caller needs.

use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap, LOCATION};

/// A 2xx answer: its body and what its headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T> {
    pub status: StatusCode,
    pub body: T,
    /// `Location` of what a `201 Created` made, e.g. `/v1/wallets/0192…`.
    pub location: Option<String>,
    /// `Idempotent-Replayed: true`: this is the stored answer to an earlier request with
    /// the same `Idempotency-Key`; nothing happened this time.
    pub replayed: bool,
    /// `ETag`, where the server sends one.
    pub etag: Option<String>,
    /// `X-Correlation-Id`: the one sent, or the one the server made up; quote it when
    /// asking about the request.
    pub correlation_id: Option<String>,
}

impl<T> Reply<T> {
    pub(crate) fn new(status: StatusCode, headers: &HeaderMap, body: T) -> Self {
        Self {
            status,
            body,
            location: header(headers, LOCATION.as_str()),
            replayed: is_replayed(headers),
            etag: header(headers, ETAG.as_str()),
            correlation_id: header(headers, CORRELATION_ID),
        }
    }

    pub fn into_body(self) -> T {
        self.body
    }
}

pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
const CORRELATION_ID: &str = "x-correlation-id";

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn is_replayed(headers: &HeaderMap) -> bool {
    header(headers, IDEMPOTENT_REPLAYED).is_some_and(|value| value.eq_ignore_ascii_case("true"))
}
