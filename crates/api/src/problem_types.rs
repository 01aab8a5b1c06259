//! Problem types: the `type` of every problem+json answer, declared once.
//!
//! Each is a URI under `api.problem_base_url` (a base the deployment controls, like the
//! schemas' base) that resolves to a short page the API serves without a token
//! (`GET /problems/{slug}`): what the problem means and what to do. Problems are built with
//! the path alone ([`TYPE_PATH`]); [`absolute_types`] puts the base in front as the answer
//! leaves, so stored answers replayed for an Idempotency-Key follow the configured base too.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::{ApiError, PROBLEM_JSON};

/// The path every problem type lives under.
pub const TYPE_PATH: &str = "/problems/";

/// One kind of problem.
#[derive(Debug)]
pub struct ProblemType {
    /// The last segment of its URI, e.g. `insufficient-funds`.
    pub slug: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
    /// What it means and what a client should do, for its page.
    pub meaning: &'static str,
}

pub const MALFORMED_REQUEST: ProblemType = ProblemType {
    slug: "malformed-request",
    status: StatusCode::BAD_REQUEST,
    title: "Malformed request",
    meaning: "The request could not be read: its body is not JSON, or an id, a query parameter or the Idempotency-Key header is malformed. Fix the request; retrying it unchanged fails again.",
};
pub const INVALID_TOKEN: ProblemType = ProblemType {
    slug: "invalid-token",
    status: StatusCode::UNAUTHORIZED,
    title: "Missing or invalid access token",
    meaning: "No bearer token, or one that is expired, not yet valid, for another audience or issuer, or not signed by a trusted key. Get a new access token from the identity provider (see the WWW-Authenticate header).",
};
pub const INSUFFICIENT_SCOPE: ProblemType = ProblemType {
    slug: "insufficient-scope",
    status: StatusCode::FORBIDDEN,
    title: "Access token lacks a required scope",
    meaning: "The access token is valid but lacks the scope this operation needs (named in the detail and in WWW-Authenticate).",
};
pub const NOT_FOUND: ProblemType = ProblemType {
    slug: "not-found",
    status: StatusCode::NOT_FOUND,
    title: "Resource not found",
    meaning: "The user, wallet or hold does not exist, or is not yours: both answer the same, so ids reveal nothing.",
};
pub const NO_SUCH_ROUTE: ProblemType = ProblemType {
    slug: "no-such-route",
    status: StatusCode::NOT_FOUND,
    title: "No such route",
    meaning: "No operation has this path. The API's operations are listed at /openapi.json.",
};
pub const METHOD_NOT_ALLOWED: ProblemType = ProblemType {
    slug: "method-not-allowed",
    status: StatusCode::METHOD_NOT_ALLOWED,
    title: "Method not allowed",
    meaning: "The path exists but not with this HTTP method.",
};
pub const PRECONDITION_FAILED: ProblemType = ProblemType {
    slug: "precondition-failed",
    status: StatusCode::PRECONDITION_FAILED,
    title: "The wallet changed since it was read",
    meaning: "If-Match names another version of the wallet than its current one: someone changed it since you read it. Read it again, decide again, and retry with the new ETag. Nothing was changed.",
};
pub const PAYLOAD_TOO_LARGE: ProblemType = ProblemType {
    slug: "payload-too-large",
    status: StatusCode::PAYLOAD_TOO_LARGE,
    title: "Request body too large",
    meaning: "The body is larger than the service accepts (api.body_limit_bytes).",
};
pub const UNSUPPORTED_MEDIA_TYPE: ProblemType = ProblemType {
    slug: "unsupported-media-type",
    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
    title: "Unsupported media type",
    meaning: "The body must be JSON, sent with Content-Type: application/json.",
};
pub const USER_EXISTS: ProblemType = ProblemType {
    slug: "user-exists",
    status: StatusCode::CONFLICT,
    title: "This principal already has a user",
    meaning: "The caller (the token's issuer and subject) already registered a user. Read it instead.",
};
pub const WALLET_NOT_ACTIVE: ProblemType = ProblemType {
    slug: "wallet-not-active",
    status: StatusCode::CONFLICT,
    title: "Wallet not active",
    meaning: "Money moves only in and out of an active wallet; this one is frozen or closed.",
};
pub const INVALID_STATUS_TRANSITION: ProblemType = ProblemType {
    slug: "invalid-status-transition",
    status: StatusCode::CONFLICT,
    title: "Invalid wallet status transition",
    meaning: "The wallet cannot go to that status from the one it is in (a closed wallet stays closed; only an active wallet freezes; only a frozen one unfreezes).",
};
pub const BALANCE_NOT_ZERO: ProblemType = ProblemType {
    slug: "balance-not-zero",
    status: StatusCode::CONFLICT,
    title: "Wallet balance is not zero",
    meaning: "A wallet closes only at a zero balance: withdraw or transfer what it holds first.",
};
pub const HOLD_NOT_PENDING: ProblemType = ProblemType {
    slug: "hold-not-pending",
    status: StatusCode::CONFLICT,
    title: "Hold not pending",
    meaning: "The hold was captured or voided, or has expired (from its expires_at on, whether or not the sweeper has recorded it): nothing is left to capture or void. Read it with GET /v1/holds/{id}.",
};
pub const PENDING_HOLDS: ProblemType = ProblemType {
    slug: "pending-holds",
    status: StatusCode::CONFLICT,
    title: "Wallet has pending holds",
    meaning: "A wallet closes only without pending holds: capture or void them (or let them expire) first.",
};
pub const IDEMPOTENCY_IN_FLIGHT: ProblemType = ProblemType {
    slug: "idempotency-in-flight",
    status: StatusCode::CONFLICT,
    title: "Request with this Idempotency-Key in progress",
    meaning: "A request with this Idempotency-Key is still running. Retry the same request with the same key a moment later to get its answer.",
};
pub const VALIDATION_ERROR: ProblemType = ProblemType {
    slug: "validation-error",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Invalid request content",
    meaning: "The request was read but its content is invalid: a missing or unknown field, a wrong type, a bad amount or currency, a blank name. The detail names the field.",
};
pub const INSUFFICIENT_FUNDS: ProblemType = ProblemType {
    slug: "insufficient-funds",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Insufficient funds",
    meaning: "The wallet's available amount (its balance less what pending holds reserve) is less than the amount asked for. Nothing was changed.",
};
pub const INVALID_EXPIRY: ProblemType = ProblemType {
    slug: "invalid-expiry",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Invalid hold expiry",
    meaning: "A hold must expire after the instant it is placed and at most 30 days later (expires_in_seconds 1 to 2592000, or expires_at in that window). Nothing was changed.",
};
pub const CAPTURE_EXCEEDS_HOLD: ProblemType = ProblemType {
    slug: "capture-exceeds-hold",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Capture exceeds the hold",
    meaning: "A capture takes at most the hold's amount. Nothing was changed.",
};
pub const CURRENCY_MISMATCH: ProblemType = ProblemType {
    slug: "currency-mismatch",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Currency mismatch",
    meaning: "The wallets of a transfer hold different currencies.",
};
pub const AMOUNT_NOT_REPRESENTABLE: ProblemType = ProblemType {
    slug: "amount-not-representable",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Amount not representable in the wallet's currency",
    meaning: "The amount has more decimal places than the wallet's currency has (or is out of range).",
};
pub const SAME_WALLET: ProblemType = ProblemType {
    slug: "same-wallet",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Transfer to the same wallet",
    meaning: "A transfer needs two different wallets.",
};
pub const UNKNOWN_USER: ProblemType = ProblemType {
    slug: "unknown-user",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Unknown user",
    meaning: "The caller has no user yet, or the user named does not exist: register with POST /v1/users first.",
};
pub const IDEMPOTENCY_KEY_REUSE: ProblemType = ProblemType {
    slug: "idempotency-key-reuse",
    status: StatusCode::UNPROCESSABLE_ENTITY,
    title: "Idempotency-Key reused with a different request",
    meaning: "This Idempotency-Key was already used for a different request (another path or body). Use a new key for a new request.",
};
pub const RATE_LIMITED: ProblemType = ProblemType {
    slug: "rate-limited",
    status: StatusCode::TOO_MANY_REQUESTS,
    title: "Rate limit exceeded",
    meaning: "This caller used up its rate limit. The RateLimit-Policy and RateLimit headers say which; retry after Retry-After-Ms.",
};
pub const OVERLOADED: ProblemType = ProblemType {
    slug: "overloaded",
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Too many requests in progress",
    meaning: "Too many writes are in progress; this one was refused at once, before touching the database. Retry after Retry-After-Ms.",
};
pub const REQUEST_TIMEOUT: ProblemType = ProblemType {
    slug: "request-timeout",
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Request timed out",
    meaning: "The request ran longer than the service allows and was rolled back: nothing was changed. Retry it with the same Idempotency-Key.",
};
pub const SERVICE_UNAVAILABLE: ProblemType = ProblemType {
    slug: "service-unavailable",
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Service unavailable",
    meaning: "The database is unreachable or too busy (a pool, statement or lock timeout). Nothing was changed; retry later, with the same Idempotency-Key.",
};
pub const OUTCOME_UNKNOWN: ProblemType = ProblemType {
    slug: "outcome-unknown",
    status: StatusCode::SERVICE_UNAVAILABLE,
    title: "Outcome unknown",
    meaning: "The database lost the connection while committing this request, and could not say within api.commit_outcome_wait_ms whether the change took effect: it may have. The service never runs it a second time. Read the wallet (its balance, version and transaction history) to learn what happened before you send it again. Send money movements with an Idempotency-Key: a retry with the same key is then always safe, and answers with the first outcome once it is known.",
};
pub const INTERNAL_ERROR: ProblemType = ProblemType {
    slug: "internal-error",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    title: "Internal server error",
    meaning: "A bug on our side. Nothing more is said here; quote the X-Correlation-Id header when reporting it.",
};

/// Every problem type, in status order: the pages served and the README's table.
pub const ALL: &[&ProblemType] = &[
    &MALFORMED_REQUEST,
    &INVALID_TOKEN,
    &INSUFFICIENT_SCOPE,
    &NOT_FOUND,
    &NO_SUCH_ROUTE,
    &METHOD_NOT_ALLOWED,
    &PRECONDITION_FAILED,
    &PAYLOAD_TOO_LARGE,
    &UNSUPPORTED_MEDIA_TYPE,
    &USER_EXISTS,
    &WALLET_NOT_ACTIVE,
    &INVALID_STATUS_TRANSITION,
    &BALANCE_NOT_ZERO,
    &HOLD_NOT_PENDING,
    &PENDING_HOLDS,
    &IDEMPOTENCY_IN_FLIGHT,
    &VALIDATION_ERROR,
    &INSUFFICIENT_FUNDS,
    &CAPTURE_EXCEEDS_HOLD,
    &INVALID_EXPIRY,
    &CURRENCY_MISMATCH,
    &AMOUNT_NOT_REPRESENTABLE,
    &SAME_WALLET,
    &UNKNOWN_USER,
    &IDEMPOTENCY_KEY_REUSE,
    &RATE_LIMITED,
    &OVERLOADED,
    &REQUEST_TIMEOUT,
    &SERVICE_UNAVAILABLE,
    &OUTCOME_UNKNOWN,
    &INTERNAL_ERROR,
];

/// `GET /problems/{slug}`: the page of a problem type.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/problems/{slug}", get(page))
}

async fn page(Path(slug): Path<String>) -> Result<Response, ApiError> {
    let Some(kind) = ALL.iter().find(|kind| kind.slug == slug) else {
        return Err(ApiError::NotFound {
            resource: "problem type",
            id: crate::problem_types::shown(&slug),
        });
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title></head>\n<body><h1>{title}</h1>\n\
         <p>HTTP {status} &middot; <code>{slug}</code></p>\n<p>{meaning}</p>\n\
         <p>Every Wallet Hub error is an RFC 9457 problem (<code>application/problem+json</code>); \
         match on its <code>type</code>, never on its <code>detail</code>.</p></body></html>\n",
        title = kind.title,
        status = kind.status.as_u16(),
        slug = kind.slug,
        meaning = kind.meaning,
    );
    Ok(Html(body).into_response())
}

/// An unknown slug as it may be shown back: a bounded, plain form.
fn shown(slug: &str) -> String {
    slug.chars()
        .take(64)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// The largest problem body rewritten; ours are a few hundred bytes.
const MAX_PROBLEM_BYTES: usize = 64 * 1024;

/// Middleware: a problem+json answer's `type` (a path under [`TYPE_PATH`]) gets `base` in
/// front, e.g. `https://wallets.example.com/problems/insufficient-funds`.
pub async fn absolute_types(
    State(base): State<std::sync::Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_JSON.as_bytes());
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PROBLEM_BYTES).await else {
        return ApiError::internal(std::io::Error::other("a problem body could not be read"))
            .into_response();
    };
    let rewritten = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|mut problem| {
            let path = problem.get("type")?.as_str()?;
            if !path.starts_with(TYPE_PATH) {
                return None;
            }
            problem["type"] = format!("{base}{path}").into();
            serde_json::to_vec(&problem).ok()
        });
    let body = rewritten.unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(length) = HeaderValue::from_str(&body.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, length);
    }
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ALL;

    #[test]
    fn every_problem_type_is_listed_once_with_a_page_worth_reading() {
        let slugs: BTreeSet<&str> = ALL.iter().map(|kind| kind.slug).collect();
        assert_eq!(slugs.len(), ALL.len(), "no slug twice");
        for kind in ALL {
            assert!(
                kind.slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                kind.slug
            );
            assert!(kind.meaning.len() > 20, "{} explains itself", kind.slug);
        }
    }
}
