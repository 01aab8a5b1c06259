//! Per-request context: correlation id and the request's trace span.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use telemetry::TraceHeaders;
use telemetry::metrics::{HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL};
use tracing::Instrument;
use uuid::Uuid;

pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// What handlers know about the request beyond its content.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's `X-Correlation-Id`, or a generated one; echoed in the response and
    /// carried by every event the request causes.
    pub correlation_id: String,
}

/// Client ids are kept when they are 1-128 visible ASCII characters; anything else is
/// replaced by a generated id (the response says which one is in use).
fn client_correlation_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_owned())
}

/// Opens the request span (continuing an incoming `traceparent`), settles the correlation
/// id, runs the request inside the span, and echoes the correlation id.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let correlation_id = request
        .headers()
        .get(&CORRELATION_ID)
        .and_then(client_correlation_id)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        // Unmatched paths share one label value: labels never carry client input.
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        otel.name = format!("{method} {route}"),
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        correlation_id = %correlation_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let headers = request.headers();
    TraceHeaders::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .continue_in(&span);
    telemetry::record_trace_ids(&span);

    request.extensions_mut().insert(RequestContext {
        correlation_id: correlation_id.clone(),
    });
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_ID.clone(), value);
    }
    response
}
