//! Extractors whose rejections are [`ApiError`]s, so every bad input is problem+json.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// `axum::Json`, rejecting with problem+json. Request types use
/// `#[serde(deny_unknown_fields)]`, so unknown fields are rejected too.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ValidJson<T>(pub T);

/// `axum::extract::Path`, rejecting with problem+json (400 for a malformed id).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ValidPath<T>(pub T);

/// `axum::extract::Query`, rejecting with problem+json (400).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ValidQuery<T>(pub T);
