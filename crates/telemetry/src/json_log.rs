//! JSON log lines that carry the `trace_id` and `span_id` of the trace they belong to, at
//! the top level where log shippers look for them.
//!
//! Spans that start or continue a trace (request, publish, consume) record their ids in
//! `trace_id`/`span_id` fields ([`crate::record_trace_ids`]). This formatter writes the
//! standard JSON line and adds the ids of the nearest such span.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Standard JSON event format plus top-level `trace_id` and `span_id`.
#[derive(Debug)]
pub struct JsonWithTraceIds {
    inner: Format<Json>,
}

impl Default for JsonWithTraceIds {
    fn default() -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonWithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let extensions = span.extensions();
                let fields = extensions.get::<FormattedFields<JsonFields>>()?;
                let parsed: serde_json::Value = serde_json::from_str(fields).ok()?;
                let trace_id = parsed.get("trace_id")?.as_str()?.to_owned();
                let span_id = parsed.get("span_id")?.as_str()?.to_owned();
                Some((trace_id, span_id))
            })
        });
        match (ids, line.trim_end().strip_suffix('}')) {
            (Some((trace_id, span_id)), Some(head)) => {
                let trace_id = serde_json::Value::String(trace_id);
                let span_id = serde_json::Value::String(span_id);
                writeln!(
                    writer,
                    "{head},\"trace_id\":{trace_id},\"span_id\":{span_id}}}"
                )
            }
            _ => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::{TraceHeaders, record_trace_ids};

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

    #[test]
    fn json_lines_inside_a_traced_span_carry_its_trace_and_span_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(JsonWithTraceIds::default())
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            TraceHeaders {
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                tracestate: None,
            }
            .continue_in(&span);
            record_trace_ids(&span);
            span.in_scope(|| {
                let child = tracing::info_span!("child");
                child.in_scope(|| tracing::info!(answer = 42, "inside"));
            });
            tracing::info!("outside");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "inside");
        assert_eq!(lines[0]["answer"], 42);
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["span_id"].as_str().map(str::len), Some(16));
        assert_ne!(
            lines[0]["span_id"], "00f067aa0ba902b7",
            "our span, not the caller's"
        );
        assert!(
            lines[1].get("trace_id").is_none(),
            "no trace outside a span"
        );
    }
}
