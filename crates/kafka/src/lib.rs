//! Kafka plumbing shared by the relay, the consumers and the operator commands.
//!
//! **Owns** every librdkafka client of the service and how it is configured: the
//! idempotent producer, the consumer runtime and its offset discipline, dead-letter
//! topics, and the Kafka readiness probe. **May touch** the Kafka brokers, and nothing
//! else: no database (a handler commits its own effect, then the runtime stores the
//! offset), no topic names (the callers pass them). What a consumed event must be (trusted
//! source, known type and version, valid data) is checked here, against the schemas of
//! `event-bindings`, before any handler runs.
//!
//! - [`failpoint`]: the crash and fault points the tests arm (compiled in only with the
//!   `failpoints` feature).
//! - [`close`]: [`Detached`] closes a client on a detached thread, never where it is
//!   dropped (librdkafka can block for good closing a consumer during a rebalance).
//! - [`config`]: the `[kafka]` section and the librdkafka client configs built from it.
//! - [`producer`]: [`EventProducer`] sends CloudEvents in binary content mode (`ce_*`
//!   headers) plus plain `traceparent`/`tracestate` headers, idempotently, and hands back
//!   the delivery report.
//! - [`consumer`]: [`run_consumer`] drives an [`EventHandler`]: decode, continue the trace,
//!   handle, and store the offset only after the handler's effect is committed; a message
//!   that can never be applied goes to its dead-letter topic.
//! - [`dlq`]: reading and redriving dead-letter topics (`wallet-hub dlq ...`).
//! - [`scan`]: [`scan::TopicScan`] reads whole topics once, up to their end offsets, for
//!   `wallet-hub audit`.
//! - [`status`]: [`ConsumerStatus`], a running consumer's assignment and lag, for readiness.
//! - [`probe`]: [`KafkaProbe`], broker reachability and topic availability for readiness.
//! - [`lag`]: [`LagReader`], each consumer group's lag from its committed offsets.
//! - [`topics`]: creating the service's topics when they are missing.

pub mod close;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod failpoint;
pub mod lag;
pub mod probe;
pub mod producer;
pub mod scan;
pub mod status;
pub mod topics;

pub use close::{Detached, close_in_background};
pub use config::{KafkaConfig, SaslMechanism, SecurityProtocol};
pub use consumer::{
    Admission, ConsumerOptions, EventHandler, HandlerError, Outcome, ReceivedEvent, run_consumer,
};
pub use lag::{GroupTopics, LagReader, PartitionLag};
pub use probe::{KafkaProbe, ProbeError};
pub use producer::{Delivered, EventProducer, ProduceError};
pub use status::ConsumerStatus;
