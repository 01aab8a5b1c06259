//! [`Error`]: every way a call can fail. A non-2xx answer is [`Error::Problem`], carrying the
//! server's RFC 9457 problem; match on its [`Problem::type_uri`] (or [`Problem::slug`]),
//! never on `detail`.

use std::fmt;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// An RFC 9457 problem (`application/problem+json`), as the server answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable URI of the kind of error, e.g.
    /// `https://wallets.example.com/problems/insufficient-funds` (under the deployment's
    /// `api.problem_base_url`); it resolves to a page saying what it means.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// Human-readable; never parse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Any other members (RFC 9457 extensions).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// The last segment of the type URI: `insufficient-funds`.
    pub fn slug(&self) -> &str {
        self.type_uri.rsplit('/').next().unwrap_or(&self.type_uri)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.status, self.title, self.type_uri)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// A non-2xx answer: the problem, and the answer's headers that matter to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemResponse {
    pub problem: Problem,
    /// `Idempotent-Replayed: true`: the stored answer to an earlier request with the same
    /// `Idempotency-Key` (a refusal is stored and replayed like a success).
    pub replayed: bool,
    /// `Retry-After`, in seconds, on 429 and 503.
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a status outside 2xx and a problem+json body.
    #[error("the server refused the request: {}", .0.problem)]
    Problem(Box<ProblemResponse>),
    /// The server answered with something this client cannot read: a non-2xx status without
    /// a problem body, or a body that is not the documented type.
    #[error("unexpected answer ({status}) to {operation}")]
    UnexpectedResponse {
        operation: &'static str,
        status: StatusCode,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The request did not get an answer: connection refused, timeout, TLS...
    #[error("{operation} failed before an answer came")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A header of the client (the bearer token, the correlation id, `traceparent`) has
    /// characters a header cannot carry.
    #[error("the {name} is not a valid header value")]
    InvalidHeader { name: &'static str },
    /// The base URL and the path do not make a URL.
    #[error("invalid URL for {operation}")]
    Url {
        operation: &'static str,
        #[source]
        source: url::ParseError,
    },
}

impl Error {
    /// The problem, if the server refused the request.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Problem(response) => Some(&response.problem),
            Error::UnexpectedResponse { .. }
            | Error::Transport { .. }
            | Error::InvalidHeader { .. }
            | Error::Url { .. } => None,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Problem(response) => StatusCode::from_u16(response.problem.status).ok(),
            Error::UnexpectedResponse { status, .. } => Some(*status),
            Error::Transport { source, .. } => source.status(),
            Error::InvalidHeader { .. } | Error::Url { .. } => None,
        }
    }
}
