//! Event bindings: where each domain event goes and what it looks like on the wire.
//!
//! **Owns** the one table event type -> binding name -> Kafka topic (the names that
//! `[bindings]` in the configuration overrides), and the CloudEvents 1.0 form of an event:
//! its `ce_type`, subject, attributes and JSON data, both ways. **May touch** nothing but
//! its inputs: no I/O, no Kafka client, no database. It depends on `domain` for the event
//! types and payloads; the outbox relay and the consumers call it, and the Kafka transport
//! is the `kafka` crate's.
//!
//! - [`bindings`]: [`EventBindings`], the table with topics overridable from config; the
//!   binding names (`wallet_created_out`, ...) are spelled so that an environment variable
//!   names them exactly.
//! - [`cloud_event`]: the CloudEvents 1.0 form of a stored event and the way back.
//! - [`schemas`]: the JSON Schema of each event type's data, generated from the domain's
//!   types (committed under `schemas/`, served by the API, named by `dataschema`), and
//!   validation against them.
//! - [`sequence`]: [`SequenceTracker`], which tells a consumer whether a wallet event is
//!   the next of its wallet's stream, a redelivery, late, or past a gap (and which
//!   sequences the gap misses).
//! - [`compat`]: the compatibility gate between two schemas of one type version.
//! - [`asyncapi`]: the AsyncAPI 3.0 document of every topic we produce and consume.

pub mod asyncapi;
pub mod bindings;
pub mod cloud_event;
pub mod compat;
pub mod schemas;
pub mod sequence;

pub use bindings::{BindingError, DEFAULT_SCHEMA_BASE, EventBindings};
pub use cloud_event::{
    DecodeError, EncodeError, OutgoingEvent, OutgoingMessage, SOURCE, cloud_event_type, decode,
    encode,
};
pub use schemas::{SchemaValidators, SchemaViolation};
pub use sequence::{Observed, SequenceTracker};
