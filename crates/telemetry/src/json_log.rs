//! JSON log lines, written by `json-subscriber`, that carry the OpenTelemetry `trace_id` and
//! `span_id` of the span they were written in, at the top level where log shippers look for
//! them (the OpenTelemetry log data model's names).
//!
//! The ids come from the span's OpenTelemetry context, looked up through the dispatcher
//! (the same lookup `json-subscriber`'s own `with_opentelemetry_ids` makes, which nests the
//! ids under other names). Each line otherwise has the fields `tracing-subscriber`'s JSON
//! format wrote: `timestamp`, `level`, `target` and the event's fields, `message` included.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::{LookupSpan, Scope};

/// The dispatcher whose OpenTelemetry layer knows each span's context. The JSON layer is
/// built before the dispatcher that holds it, so it learns it afterwards, once.
#[derive(Debug, Clone, Default)]
pub struct SpanContexts(Arc<OnceLock<WeakDispatch>>);

impl SpanContexts {
    /// Looks contexts up through `dispatch` from now on; later calls change nothing.
    pub fn bind(&self, dispatch: &Dispatch) {
        // A second `init` in one process (tests) keeps the first binding, as it keeps the
        // first subscriber.
        let _first_wins = self.0.set(dispatch.downgrade());
    }

    /// The valid OpenTelemetry context of the innermost span of `scope` that has one: spans
    /// below the OpenTelemetry layer's level have none.
    fn nearest<'a, R: LookupSpan<'a>>(&self, scope: Scope<'a, R>) -> Option<SpanContext> {
        let dispatch = self.0.get()?.upgrade()?;
        scope.into_iter().find_map(|span| {
            let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let span_context = context.span().span_context().clone();
            span_context.is_valid().then_some(span_context)
        })
    }
}

/// The JSON log layer, writing to `make_writer`, with ids found through `contexts`.
pub fn layer<S, W>(contexts: SpanContexts, make_writer: W) -> json_subscriber::fmt::Layer<S, W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let mut layer = json_subscriber::fmt::layer()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(make_writer);
    layer
        .inner_layer_mut()
        .add_multiple_dynamic_fields(move |event, context, fields| {
            let Some(span_context) = context
                .event_scope(event)
                .and_then(|scope| contexts.nearest(scope))
            else {
                return;
            };
            // Hex strings of fixed length: serializing them cannot fail.
            let _infallible = fields.write_field("trace_id", span_context.trace_id().to_string());
            let _infallible = fields.write_field("span_id", span_context.span_id().to_string());
        });
    layer
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    use super::*;
    use crate::{TraceHeaders, record_trace_ids};

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn span_id(span: &tracing::Span) -> SpanId {
        span.context().span().span_context().span_id()
    }

    #[test]
    fn json_lines_inside_a_traced_span_carry_its_trace_and_span_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let contexts = SpanContexts::default();
        // The wiring `init` uses: the log layer and the OpenTelemetry layer, each filtered.
        let dispatch = crate::dispatch(
            layer(contexts.clone(), move || writer.clone()).boxed(),
            EnvFilter::new("debug"),
            provider.tracer("test"),
            &contexts,
        );
        let (child_id, request_id) = tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                "request",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            TraceHeaders {
                traceparent: Some(format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01")),
                tracestate: None,
            }
            .continue_in(&span);
            record_trace_ids(&span);
            let ids = span.in_scope(|| {
                let child = tracing::info_span!("child");
                child.in_scope(|| tracing::info!(answer = 42, "inside"));
                // Below the OpenTelemetry layer's level: no context of its own.
                let detail = tracing::debug_span!("detail");
                detail.in_scope(|| tracing::info!("in a debug span"));
                (span_id(&child), span_id(&span))
            });
            tracing::info!("outside");
            ids
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["message"], "inside");
        assert_eq!(lines[0]["answer"], 42);
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], module_path!());
        assert!(lines[0]["timestamp"].is_string(), "{}", lines[0]);
        assert_eq!(lines[0]["trace_id"], TRACE_ID);
        assert_eq!(lines[0]["span_id"].as_str().map(str::len), Some(16));
        assert_ne!(
            lines[0]["span_id"], CALLER_SPAN_ID,
            "our span, not the caller's"
        );
        assert_eq!(
            lines[0]["span_id"],
            child_id.to_string(),
            "the innermost span"
        );
        assert_eq!(lines[1]["message"], "in a debug span");
        assert_eq!(lines[1]["trace_id"], TRACE_ID);
        assert_eq!(
            lines[1]["span_id"],
            request_id.to_string(),
            "the nearest span that has a context"
        );
        assert_eq!(lines[2]["message"], "outside");
        assert!(
            lines[2].get("trace_id").is_none() && lines[2].get("span_id").is_none(),
            "no trace outside a span: {}",
            lines[2]
        );
    }
}
