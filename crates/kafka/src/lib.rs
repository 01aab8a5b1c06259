//! Kafka plumbing shared by the relay and the consumers.
//!
//! - [`config`]: the `[kafka]` section and the librdkafka client configs built from it.
//! - [`producer`]: [`EventProducer`] sends CloudEvents in binary content mode (`ce_*`
//!   headers) plus plain `traceparent`/`tracestate` headers, idempotently, and hands back
//!   the delivery report.
//! - [`dlq`]: reading and redriving dead-letter topics.
//! - [`consumer`]: [`run_consumer`] drives an [`EventHandler`]: decode, continue the trace,
//!   handle, and store the offset only after the handler's effect is committed.

pub mod config;
pub mod consumer;
pub mod dlq;
pub mod failpoint;
pub mod probe;
pub mod producer;
pub mod status;

pub use config::KafkaConfig;
pub use consumer::{
    ConsumerOptions, EventHandler, HandlerError, Outcome, ReceivedEvent, run_consumer,
};
pub use probe::KafkaProbe;
pub use producer::{Delivered, EventProducer, ProduceError};
pub use status::ConsumerStatus;
