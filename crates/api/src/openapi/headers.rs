//! Headers that several operations share, documented once: request headers derived with
//! `IntoParams`, response headers built here. [`super::CommonHeaders`] puts the ones every
//! operation has on every operation.

use utoipa::IntoParams;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// The headers that make a `POST` safe to retry, read by [`crate::write::MaybeIdempotencyKey`]
/// (see [`crate::write`] for what the server does with them). An operation lists them as
/// `params(IdempotencyHeaders)`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeaders {
    /// Makes retries safe (the served document states for how long: see
    /// [`super::IdempotencyTtl`])
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        schema_with = crate::grammar::idempotency_key_schema
    )]
    pub idempotency_key: Option<String>,
}

/// What every operation reads to tie a request to others ([`crate::context`]). Neither is
/// ever refused: a correlation id that is not 1 to 128 visible ASCII characters is replaced
/// by a generated one, and a `traceparent` that is not W3C Trace Context starts a new trace.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TracingHeaders {
    /// Carried by every event the request causes and echoed in the response
    #[param(rename = "X-Correlation-Id", nullable = false)]
    pub correlation_id: Option<String>,
    /// W3C Trace Context: the request's span continues this trace
    #[param(rename = "traceparent", nullable = false)]
    pub traceparent: Option<String>,
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new().schema_type(SchemaType::new(Type::String)),
        ))
        .description(Some(description))
        .build()
}

/// `X-Correlation-Id` of every response.
pub(crate) fn correlation_id() -> Header {
    string_header(
        "The request's correlation id (the client's, or a generated one); quote it when \
         reporting a problem",
    )
}

/// `Idempotent-Replayed` of an answer to a retried `Idempotency-Key`.
pub(crate) fn idempotent_replayed() -> Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .enum_values(Some(["true"])),
        ))
        .description(Some(
            "`true` when this is the stored answer to an earlier request with the same \
             Idempotency-Key (nothing was changed again)",
        ))
        .build()
}
