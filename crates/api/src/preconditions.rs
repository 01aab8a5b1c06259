//! Conditional requests on a wallet (RFC 9110 section 13), with the wallet's `version` as its
//! entity tag (`"7"`: strong, it changes with every change of the wallet):
//!
//! - `GET /v1/wallets/{id}` sends `ETag`; with `If-None-Match` naming that tag (or `*`) the
//!   answer is `304 Not Modified` without a body, so a client can cache the wallet.
//! - Money movements and status changes accept `If-Match`: the change runs only if the wallet
//!   is still at that version, judged by [`domain::decide`] on the locked wallet as the
//!   earlier requests of its batch left it; otherwise 412 `precondition-failed` and nothing
//!   changes (optimistic concurrency for clients that read, then write).
//!
//! Any header value is read (RFC 9110 section 13.1): a list of entity tags or `*`; an element
//! that is not one of this API's tags simply never matches (so `If-Match: x` is 412, and
//! `If-None-Match: x` a full answer), never a 400.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use utoipa::IntoParams;

use crate::error::ApiError;

/// The `ETag` of a wallet at `version`.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::try_from(format!("\"{version}\""))
        .expect("a number in quotes is a valid header value")
}

/// What a precondition header names: `*`, or the versions of its entity tags that are this
/// API's (each with whether it was weak); other elements can match nothing and are dropped.
/// The domain compares it ([`domain::decide`] for `If-Match`).
pub use domain::VersionCondition as Condition;

/// Parses a header value (an unreadable one names no tag).
fn parse(value: &HeaderValue) -> Condition {
    let Ok(text) = value.to_str() else {
        return Condition::Tags(Vec::new());
    };
    if text.trim() == "*" {
        return Condition::Any;
    }
    let tags = text
        .split(',')
        .filter_map(|element| {
            let element = element.trim();
            let (weak, tag) = match element.strip_prefix("W/") {
                Some(tag) => (true, tag),
                None => (false, element),
            };
            let version = tag.strip_prefix('"')?.strip_suffix('"')?;
            let canonical = !version.starts_with('0') || version == "0";
            let version: i64 = version.parse().ok().filter(|_| canonical)?;
            Some((version, weak))
        })
        .collect();
    Condition::Tags(tags)
}

fn condition(headers: &HeaderMap, name: &HeaderName) -> Option<Condition> {
    headers.get(name).map(parse)
}

/// `If-Match` of a change to a wallet: its version the client last saw.
#[derive(Debug, Clone)]
pub struct IfMatch(pub Option<Condition>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IfMatch(condition(&parts.headers, &header::IF_MATCH)))
    }
}

/// `If-None-Match` of a read of a wallet: the version the client has cached.
#[derive(Debug, Clone)]
pub struct IfNoneMatch(pub Option<Condition>);

impl IfNoneMatch {
    /// Whether the client's copy is current (answer 304).
    pub fn is_current(&self, version: i64) -> bool {
        self.0.as_ref().is_some_and(|c| c.matches_weakly(version))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(condition(
            &parts.headers,
            &header::IF_NONE_MATCH,
        )))
    }
}

/// `If-Match` of the operations that change a wallet.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// Change the wallet only if it is still at this version (its `ETag`, e.g. `"7"`, or
    /// `*`); else 412 `precondition-failed` and nothing changes. Any value is read: one
    /// that names no current version is 412
    #[param(rename = "If-Match", nullable = false)]
    pub if_match: Option<String>,
}

/// `If-None-Match` of reading a wallet.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchHeader {
    /// The wallet's `ETag` the client has cached (or `*`): 304 without a body if it is
    /// current; any other value gets the full answer
    #[param(rename = "If-None-Match", nullable = false)]
    pub if_none_match: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Condition {
        super::parse(&HeaderValue::from_str(value).expect("value"))
    }

    #[test]
    fn if_match_compares_strongly_and_if_none_match_weakly() {
        assert!(parse("\"7\"").matches_strongly(7));
        assert!(parse("*").matches_strongly(7));
        assert!(parse("\"3\", \"7\"").matches_strongly(7));
        assert!(!parse("W/\"7\"").matches_strongly(7));
        assert!(parse("W/\"7\"").matches_weakly(7));
        for never in ["7", "\"07\"", "\"\"", "\"x\"", "null", "", "\"-7\""] {
            assert!(!parse(never).matches_strongly(7), "{never:?}");
            assert!(!parse(never).matches_weakly(7), "{never:?}");
        }
        assert!(!parse("\"8\"").matches_strongly(7));
    }
}
