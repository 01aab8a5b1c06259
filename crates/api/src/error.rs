//! `ApiError`: every way a request can fail, answered as RFC 9457 problem+json.
//!
//! Each kind has a stable `type` URI (clients match on it, never on `detail`), a title and
//! a status. A 500 says only that something went wrong and which correlation id to quote;
//! the cause is logged once, here, with its chain.

use std::error::Error as StdError;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://wallethub.io/problems/";

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
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn internal(error: impl StdError + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(error))
    }

    /// Pool exhaustion and lost connections are 503 (retry later); other database
    /// errors are 500.
    pub fn database(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::Unavailable(Box::new(error))
            }
            other => ApiError::internal(other),
        }
    }

    /// `(status, type slug, title)`.
    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::MalformedRequest(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-error",
                "Invalid request content",
            ),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Resource not found"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no-such-route", "No such route"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal server error",
            ),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.kind();
        let detail = match &self {
            ApiError::Internal(source) | ApiError::Unavailable(source) => {
                tracing::error!(
                    error = &**source as &dyn StdError,
                    status = status.as_u16(),
                    "request failed"
                );
                "The request could not be completed. Quote the X-Correlation-Id header when reporting this."
                    .to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
        };
        let mut response = (status, Json(problem)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
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

pub async fn not_found_fallback() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::MethodNotAllowed
}
