//! Telemetry: one place that sets up logs, traces and metrics, and moves W3C trace context
//! across process boundaries.
//!
//! **Owns** the process's `tracing` subscriber and log format, the OpenTelemetry tracer
//! provider and propagator, the Prometheus recorder with every metric name, and the
//! `traceparent`/`tracestate` pair as it travels in HTTP headers, outbox rows and Kafka
//! headers. **May touch** process-global state (the subscriber, the propagator, the metrics
//! recorder, installed once), stdout for logs and the OTLP collector over the network.
//! It knows nothing of wallets, PostgreSQL or Kafka: the crates that do call into it.
//!
//! - [`init`] installs the global `tracing` subscriber: a log layer (text, or JSON lines
//!   with the span's `trace_id`/`span_id`, filtered by `log.filter`) and an OpenTelemetry
//!   layer with its own, fixed filter, so that turning logs down never breaks trace
//!   propagation.
//! - [`TraceHeaders`] is the `traceparent`/`tracestate` pair: [`TraceHeaders::current`]
//!   captures the current span's context (stored on outbox rows), and
//!   [`TraceHeaders::continue_in`] makes a span continue a received context.
//! - [`ProducerSpan`] is the span of one message sent to Kafka, made straight through the
//!   OpenTelemetry API for paths that send tens of thousands of messages a second.
//! - [`metrics`]: the recorder and the name of every metric, with the label rule.
//! - `json_log`: the JSON log lines, with the span's `trace_id` and `span_id` at the top
//!   level.

mod json_log;
pub mod metrics;

/// Span attributes for [`ProducerSpan::start`].
pub use opentelemetry::KeyValue;

use std::borrow::Cow;
use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// `[log]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,sqlx=warn`. `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[telemetry]` section: where traces go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP collector endpoint, e.g. `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318` (HTTP). Empty: no export (trace context still propagates).
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    /// Fraction of new traces recorded, 0.0 to 1.0; continued traces follow their parent.
    pub sampling_ratio: f64,
    /// `deployment.environment.name` resource attribute.
    pub environment: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{filter}`")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("telemetry.sampling_ratio must be between 0 and 1, got {0}")]
    SamplingRatio(f64),
    #[error("cannot build the OTLP exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The tracer provider: batches spans to the OTLP collector when one is configured.
fn tracer_provider(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::Sampler;

    if !(0.0..=1.0).contains(&config.sampling_ratio) {
        return Err(TelemetryError::SamplingRatio(config.sampling_ratio));
    }
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new("deployment.environment.name", config.environment.clone()),
        ])
        .build();
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))));
    let endpoint = config.otlp_endpoint.trim();
    if endpoint.is_empty() {
        return Ok(builder.build());
    }
    let exporter_error = |source| TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        source,
    };
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(exporter_error)?,
        OtlpProtocol::Http => {
            let url = if endpoint.ends_with("/v1/traces") {
                endpoint.to_owned()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()
                .map_err(exporter_error)?
        }
    };
    Ok(builder.with_batch_exporter(exporter).build())
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// The provider's tracer for spans made without `tracing` ([`ProducerSpan`]), set by
/// [`init`] only when spans are exported (an OTLP endpoint is configured). Without an
/// exporter such a span would be recorded and dropped unseen, tens of thousands of times
/// a second on the relay's path.
static EXPORTING_TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Installs logging and tracing for the process. Later calls are no-ops (tests build many
/// apps in one process), so the first configuration wins.
pub fn init(
    service_name: &'static str,
    config: &LogConfig,
    telemetry: &TelemetryConfig,
) -> Result<(), TelemetryError> {
    let filter_text = std::env::var("RUST_LOG").unwrap_or_else(|_| config.filter.clone());
    let log_filter = EnvFilter::try_new(&filter_text).map_err(|source| TelemetryError::Filter {
        filter: filter_text.clone(),
        source,
    })?;
    if PROVIDER.get().is_some() {
        return Ok(());
    }
    let provider = tracer_provider(service_name, telemetry)?;
    let provider = PROVIDER.get_or_init(|| provider);
    let tracer = provider.tracer(service_name);
    if !telemetry.otlp_endpoint.trim().is_empty() {
        EXPORTING_TRACER.get_or_init(|| tracer.clone());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let contexts = json_log::SpanContexts::default();
    let log_layer = match config.format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => json_log::layer(contexts.clone(), std::io::stdout).boxed(),
    };
    // A second `init` in the same process (tests) finds a subscriber already set: fine.
    let _already_set = dispatch(log_layer, log_filter, tracer, &contexts).try_init();
    Ok(())
}

/// The process's subscriber: `log_layer` under `log_filter`, and the OpenTelemetry layer
/// under its own filter. `contexts` learns the dispatcher, for the JSON log layer's ids.
fn dispatch(
    log_layer: Box<dyn Layer<Registry> + Send + Sync>,
    log_filter: EnvFilter,
    tracer: SdkTracer,
    contexts: &json_log::SpanContexts,
) -> tracing::Dispatch {
    // Spans that carry trace context are at INFO or above; keep them regardless of log level.
    // Every such span is still recorded and exported whole (name, parent, start and end,
    // fields, events, source location); three extras of the layer are off, because each
    // span is entered and left on every poll of its future, several times per request:
    // - busy/idle time (`busy_ns`, `idle_ns`): two clock reads per poll;
    // - thread id and name: on a work-stealing runtime they name whichever worker polled
    //   the span first, which says nothing;
    // - activating the OpenTelemetry context on entry (a thread-local push and pop per
    //   poll): nothing here reads OpenTelemetry's current context; trace context is taken
    //   from the `tracing` span itself (`TraceHeaders::current`, `OpenTelemetrySpanExt`).
    // (issue 29's profile: tracing was 7% of the service's CPU at half load.)
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_context_activation(false)
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(log_layer.with_filter(log_filter))
            .with(otel_layer),
    );
    contexts.bind(&dispatch);
    dispatch
}

/// Exports the spans recorded so far (tests; also called by [`shutdown`]).
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.force_flush()
    {
        tracing::debug!(%error, "tracer provider flush");
    }
}

/// Flushes and stops the tracer provider; call once at process exit.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::debug!(%error, "tracer provider shutdown");
    }
}

/// W3C trace context headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The context of the current span, as headers. Empty when tracing is not initialised.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current().context())
    }

    /// The headers of an OpenTelemetry context; empty for a context without a valid span.
    fn of(context: &Context) -> Self {
        let mut headers = Self::default();
        TraceContextPropagator::new().inject_context(context, &mut headers);
        headers
    }

    /// This remote context as an OpenTelemetry parent (the empty context without one).
    fn extract(&self) -> Context {
        if self.traceparent.is_none() {
            return Context::new();
        }
        TraceContextPropagator::new().extract(self)
    }

    /// Reads the pair from any header map, via `get(name)`.
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            traceparent: get(TRACEPARENT).map(str::to_owned),
            tracestate: get(TRACESTATE).map(str::to_owned),
        }
    }

    /// The trace id (32 hex digits) of `traceparent`, if it is well formed.
    pub fn trace_id(&self) -> Option<&str> {
        let traceparent = self.traceparent.as_deref()?;
        let mut parts = traceparent.split('-');
        let (_version, trace_id) = (parts.next()?, parts.next()?);
        (trace_id.len() == 32).then_some(trace_id)
    }

    /// Makes `span` a child of this remote context. Call before the span is first entered.
    /// Without a valid `traceparent` the span starts a new trace.
    pub fn continue_in(&self, span: &tracing::Span) {
        if self.traceparent.is_none() {
            return;
        }
        if let Err(error) = span.set_parent(self.extract()) {
            tracing::debug!(%error, "cannot continue remote trace");
        }
    }
}

/// `error: cause: cause ...`: the whole chain on one line, for stored or forwarded
/// errors (outbox `last_error`, dead-letter headers). Logs use the error value itself.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Records the OpenTelemetry `trace_id` and `span_id` of `span` into its fields of those
/// names (declare them `tracing::field::Empty`), so that text logs, which print span
/// fields, carry them (JSON lines look the ids up themselves). Call after
/// [`TraceHeaders::continue_in`].
pub fn record_trace_ids(span: &tracing::Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
        span.record("span_id", span_context.span_id().to_string());
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value).filter(|s| !s.is_empty()),
            _ => {}
        }
    }
}

/// The OpenTelemetry span of one message handed to a producer: kind `Producer`, a child of
/// the context the message was caused by, ended when dropped. Its [`headers`] are what the
/// message carries, so the consumer continues from it.
///
/// Made with the OpenTelemetry API rather than as a `tracing` span: the relay sends tens of
/// thousands of messages a second, and a `tracing` span each (a registry slot, both layers'
/// bookkeeping, its trace ids recorded for logs nothing writes inside it) cost it more CPU
/// than building the message. It is made only when spans are exported ([`init`] with an
/// OTLP endpoint), and its name and attributes only then, its attributes only for a span
/// the sampler records. Otherwise no span is made and the headers pass the parent's
/// context on unchanged: a span nobody receives would only cost the sender, and the
/// consumer's parent would be a span id no collector has either way.
///
/// [`headers`]: ProducerSpan::headers
#[derive(Debug)]
pub struct ProducerSpan {
    parent: TraceHeaders,
    /// The span's context; `None` when no span is made.
    context: Option<Context>,
}

impl ProducerSpan {
    /// Starts the span under `parent` (a new trace when `parent` is empty); `name` and
    /// `attributes` are called only when a span is made, and `attributes` only when the
    /// sampler records it.
    pub fn start<N: Into<Cow<'static, str>>>(
        parent: TraceHeaders,
        name: impl FnOnce() -> N,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        let context = EXPORTING_TRACER
            .get()
            .map(|tracer| child_span(tracer, &parent, name, attributes));
        Self { parent, context }
    }

    /// The W3C headers that carry this span's context (the parent's, when no span is made).
    pub fn headers(&self) -> Cow<'_, TraceHeaders> {
        match &self.context {
            Some(context) => Cow::Owned(TraceHeaders::of(context)),
            None => Cow::Borrowed(&self.parent),
        }
    }
}

/// A `Producer` span of `tracer` under `parent`, as a context.
fn child_span<N: Into<Cow<'static, str>>>(
    tracer: &SdkTracer,
    parent: &TraceHeaders,
    name: impl FnOnce() -> N,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Context {
    use opentelemetry::trace::Span as _;

    let parent = parent.extract();
    let mut span = tracer
        .span_builder(name())
        .with_kind(SpanKind::Producer)
        .start_with_context(tracer, &parent);
    if span.is_recording() {
        span.set_attributes(attributes());
    }
    parent.with_span(span)
}

impl Drop for ProducerSpan {
    fn drop(&mut self) {
        if let Some(context) = &self.context {
            context.span().end();
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn parts(traceparent: &str) -> Vec<&str> {
        traceparent.split('-').collect()
    }

    fn parent() -> TraceHeaders {
        TraceHeaders {
            traceparent: Some(PARENT.to_owned()),
            tracestate: Some("vendor=1".to_owned()),
        }
    }

    /// A `ProducerSpan`'s name and attributes, which must not be made.
    fn unused_name() -> &'static str {
        panic!("no span is made, so no name")
    }
    fn unused_attributes() -> Vec<KeyValue> {
        panic!("no span is made, so no attributes")
    }

    // One test: `init` is process-wide, so "before" and "after" cannot run in parallel.
    #[test]
    fn without_an_exporter_no_producer_span_is_made_and_the_parent_goes_on_unchanged() {
        let before = ProducerSpan::start(parent(), unused_name, unused_attributes);
        assert_eq!(*before.headers(), parent(), "no tracer yet");
        let root = ProducerSpan::start(TraceHeaders::default(), unused_name, unused_attributes);
        assert_eq!(*root.headers(), TraceHeaders::default());

        let log = LogConfig {
            format: LogFormat::Text,
            filter: "off".to_owned(),
        };
        let telemetry = TelemetryConfig {
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::Http,
            sampling_ratio: 1.0,
            environment: "test".to_owned(),
        };
        init("telemetry-test", &log, &telemetry).expect("init");

        let after = ProducerSpan::start(parent(), unused_name, unused_attributes);
        assert_eq!(
            *after.headers(),
            parent(),
            "no OTLP endpoint: nothing would receive the span"
        );
    }

    /// The tracer `init` makes for an exporting configuration (the exporter itself is left
    /// out: it changes nothing of what a span is).
    fn exporting_tracer() -> SdkTracer {
        let telemetry = TelemetryConfig {
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::Http,
            sampling_ratio: 1.0,
            environment: "test".to_owned(),
        };
        tracer_provider("telemetry-test", &telemetry)
            .expect("a provider")
            .tracer("telemetry-test")
    }

    #[test]
    fn a_producer_span_continues_its_parent_with_its_own_span_id() {
        let tracer = exporting_tracer();
        let mut described = false;
        let child = TraceHeaders::of(&child_span(
            &tracer,
            &parent(),
            || "send t",
            || {
                described = true;
                vec![KeyValue::new("a", 1)]
            },
        ));
        assert!(described, "a recorded span gets its attributes");
        let child_parts = parts(child.traceparent.as_deref().expect("traceparent"));
        let parent_parts = parts(PARENT);
        assert_eq!(child_parts[1], parent_parts[1], "same trace");
        assert_ne!(child_parts[2], parent_parts[2], "its own span id");
        assert_eq!(child_parts[3], "01", "sampled like its parent");
        assert_eq!(child.tracestate.as_deref(), Some("vendor=1"));

        let root = TraceHeaders::of(&child_span(
            &tracer,
            &TraceHeaders::default(),
            || "send t",
            Vec::new,
        ));
        let root_parts = parts(root.traceparent.as_deref().expect("a new trace"));
        assert_ne!(root_parts[1], parent_parts[1]);
    }

    #[test]
    fn a_producer_span_under_an_unsampled_parent_is_not_recorded_and_gets_no_attributes() {
        let unsampled = TraceHeaders {
            traceparent: Some(PARENT.replace("-01", "-00")),
            tracestate: None,
        };
        let child = TraceHeaders::of(&child_span(
            &exporting_tracer(),
            &unsampled,
            || "send t",
            unused_attributes,
        ));
        let child_parts = parts(child.traceparent.as_deref().expect("traceparent"));
        assert_eq!(child_parts[1], parts(PARENT)[1], "same trace");
        assert_eq!(child_parts[3], "00", "not sampled, like its parent");
    }
}
