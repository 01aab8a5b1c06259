//! Event bindings: where each domain event goes and what it looks like on the wire.
//!
//! - [`bindings`]: the central table event type -> binding name -> Kafka topic (the
//!   design's `EventBindings`), with topics overridable from config.
//! - [`cloud_event`]: the CloudEvents 1.0 form of a stored event and the way back.

pub mod bindings;
pub mod cloud_event;

pub use bindings::{BindingError, EventBindings};
pub use cloud_event::{DecodeError, EncodeError, OutgoingEvent, SOURCE, decode, encode};
