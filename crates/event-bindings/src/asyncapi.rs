//! The AsyncAPI 3.0 document of Wallet Hub's Kafka interface, generated from the same
//! tables the service runs on: the bindings (topic of each event type), the event schemas,
//! which topics our own consumers read, and the dead-letter suffix.
//!
//! The service serves it at `/asyncapi.json` with its configured topics; the default
//! configuration's document is committed as `asyncapi/asyncapi.json` (a test fails when
//! it differs) and `scripts/test` validates it with the official AsyncAPI parser.
//!
//! Payload schemas are the event schemas of [`crate::schemas`] without `$schema` (AsyncAPI
//! embeds JSON Schema in its own schema format); the canonical files are the ones served
//! at each event's `dataschema`.

use domain::EventType;
use serde_json::{Map, Value, json};

use crate::bindings::EventBindings;
use crate::cloud_event::{SOURCE, cloud_event_type};
use crate::schemas::{schema, schema_path};

/// Kafka binding version of the AsyncAPI Kafka bindings used below.
const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// Retention of our topics as `scripts/kafka-broker` configures the broker (168 h); a
/// deployment may set its own per topic.
const RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// The document for `bindings`, with dead-letter topics `<topic><dead_letter_suffix>` for
/// the topics of `consumed` (the event types our own consumers read).
pub fn document(
    bindings: &EventBindings,
    dead_letter_suffix: &str,
    consumed: &[EventType],
) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas = Map::new();

    for event_type in EventType::ALL {
        let ty = cloud_event_type(event_type);
        let topic = bindings.destination(event_type);
        let channel = channel_id(event_type);
        let mut payload = schema(event_type);
        if let Some(object) = payload.as_object_mut() {
            object.remove("$schema");
        }
        schemas.insert(ty.to_owned(), payload);
        messages.insert(ty.to_owned(), message(bindings, event_type, false));
        let description = if event_type.is_derived() {
            format!(
                "`{ty}` events, one per record, in CloudEvents 1.0 binary content mode \
                 (attributes in `ce_*` headers, data as the JSON value), written by the \
                 analytics job (Apache Flink, docs/analytics.md) with `ce_source` \
                 `/wallet-hub/analytics` in Kafka transactions committed with its checkpoints: \
                 read with `isolation.level=read_committed`. The `ce_id` is derived from what \
                 the event is about, so a replay carries the same id. Retained {} days.",
                RETENTION_MS / (24 * 3600 * 1000)
            )
        } else {
            format!(
                "`{ty}` events, one per record, in CloudEvents 1.0 binary content mode \
                 (attributes in `ce_*` headers, data as the JSON value). Keyed by the \
                 aggregate id (the `subject`): one aggregate's events are on one partition, \
                 in the order they were committed. Delivered at least once: dedupe on \
                 `ce_id`. Retained {} days; the outbox keeps sent events for replay \
                 (`wallet-hub outbox replay`).",
                RETENTION_MS / (24 * 3600 * 1000)
            )
        };
        let (publisher, how) = if event_type.is_derived() {
            (
                "The Wallet Hub analytics job",
                "The analytics job (Apache Flink) publishes each result once, exactly once \
                 across its restarts (checkpoints and a transactional sink).",
            )
        } else {
            (
                "Wallet Hub",
                "The outbox relay publishes each committed event, in commit order per key.",
            )
        };
        channels.insert(
            channel.clone(),
            json!({
                "address": topic,
                "title": topic,
                "description": description,
                "messages": { ty: {"$ref": format!("#/components/messages/{ty}")} },
                "bindings": {"kafka": topic_binding()},
            }),
        );
        operations.insert(
            format!("publish.{channel}"),
            json!({
                "action": "send",
                "title": format!("{publisher} publishes {ty}"),
                "description": how,
                "channel": {"$ref": format!("#/channels/{channel}")},
                "messages": [{"$ref": format!("#/channels/{channel}/messages/{ty}")}],
            }),
        );
        if !consumed.contains(&event_type) {
            continue;
        }
        operations.insert(
            format!("consume.{channel}"),
            json!({
                "action": "receive",
                "title": format!("Wallet Hub consumes {ty}"),
                "description": format!(
                    "Our own consumer reads this topic. It accepts only `ce_source` from its \
                     allow-list (default `{SOURCE}`), known types and schema versions, and data \
                     valid against the schema; anything else goes to the dead-letter topic."
                ),
                "channel": {"$ref": format!("#/channels/{channel}")},
                "messages": [{"$ref": format!("#/channels/{channel}/messages/{ty}")}],
            }),
        );
        let dlq_channel = format!("{channel}.dlq");
        let dlq_topic = format!("{topic}{dead_letter_suffix}");
        let dlq_message = format!("{ty}.dead-letter");
        messages.insert(dlq_message.clone(), message(bindings, event_type, true));
        channels.insert(
            dlq_channel.clone(),
            json!({
                "address": dlq_topic,
                "title": dlq_topic,
                "description": format!(
                    "Records of `{topic}` that a Wallet Hub consumer could never apply: the \
                     original key, value and headers (any incoming `dlq_*` headers removed), \
                     plus `dlq_*` headers saying where the record came from and why. \
                     `wallet-hub dlq list|redrive` reads them."
                ),
                "messages": { dlq_message.clone(): {"$ref": format!("#/components/messages/{dlq_message}")} },
                "bindings": {"kafka": topic_binding()},
            }),
        );
        operations.insert(
            format!("dead-letter.{channel}"),
            json!({
                "action": "send",
                "title": format!("Wallet Hub dead-letters {ty}"),
                "channel": {"$ref": format!("#/channels/{dlq_channel}")},
                "messages": [{"$ref": format!("#/channels/{dlq_channel}/messages/{dlq_message}")}],
            }),
        );
    }

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Wallet Hub events",
            "version": "1.0.0",
            "description": "Every Kafka topic Wallet Hub produces and consumes. Events are CloudEvents 1.0 \
                in binary content mode; the data of each type is described by its JSON Schema \
                (draft 2020-12), served at the event's `dataschema` URL. Ordering: per key \
                (aggregate id). Delivery: at least once; dedupe on `ce_id`. See docs/events.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The development broker (scripts/kafka-broker); deployments configure kafka.brokers.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
        },
    })
}

/// Channel id of an event type's topic: its binding name without the `_out` suffix.
fn channel_id(event_type: EventType) -> String {
    let binding = EventBindings::binding_name(event_type);
    binding.strip_suffix("_out").unwrap_or(binding).to_owned()
}

fn topic_binding() -> Value {
    json!({
        "topicConfiguration": {
            "cleanup.policy": ["delete"],
            "retention.ms": RETENTION_MS,
        },
        "bindingVersion": KAFKA_BINDING_VERSION,
    })
}

fn message(bindings: &EventBindings, event_type: EventType, dead_letter: bool) -> Value {
    let ty = cloud_event_type(event_type);
    let text = |description: &str| json!({"type": "string", "description": description});
    let mut headers = json!({
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": text("The event id, equal to the data's `event_id`; stable across re-sends: dedupe on it."),
        "ce_source": {"type": "string", "const": SOURCE},
        "ce_type": {"type": "string", "const": ty},
        "ce_subject": text("The aggregate id, also the record key."),
        "ce_time": {"type": "string", "format": "date-time", "description": "When the event occurred."},
        "ce_dataschema": {
            "type": "string",
            "format": "uri",
            "description": format!("URL of the data's JSON Schema: <schema base>/{}", schema_path(event_type)),
            "examples": [bindings.dataschema(event_type).as_str()],
        },
        "content-type": {"type": "string", "const": "application/json"},
        "ce_traceparent": text("W3C trace context of the request that caused the event (CloudEvents extension)."),
        "ce_tracestate": text("W3C tracestate, when the request carried one."),
        "traceparent": text("W3C trace context of the relay's send span (a child of the request's trace); of the request itself when the relay exports no traces."),
        "tracestate": text("W3C tracestate of the send span (of the request when the relay exports no traces)."),
    });
    let mut required = vec![
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "content-type",
    ];
    if domain::stream::is_wallet_event(event_type) {
        let object = headers
            .as_object_mut()
            .unwrap_or_else(|| unreachable!("an object"));
        object.insert(
            format!("ce_{}", crate::cloud_event::SEQUENCE),
            json!({
                "type": "string",
                "pattern": "^[0-9]{19}$",
                "description": "The event's place in its wallet's stream (CloudEvents `sequence` extension): 1, 2, 3 ... with no gap, 19 digits zero-padded. A sequence past the next one you have means events are missing (or late on another topic): fill the gap from `GET /v1/wallets/{id}/events?after_sequence=`. Absent on events published before streams.",
            }),
        );
    }
    if dead_letter {
        let object = headers
            .as_object_mut()
            .unwrap_or_else(|| unreachable!("an object"));
        for (name, description) in [
            (
                "dlq_original_topic",
                "The topic the record was read from (where `wallet-hub dlq redrive` sends it back).",
            ),
            ("dlq_original_partition", "Its partition."),
            ("dlq_original_offset", "Its offset."),
            ("dlq_consumer", "The consumer that refused it."),
            (
                "dlq_error_class",
                "Why, as a class: oversized, undecodable, untrusted-source, unknown-type, unknown-version, schema-invalid, permanent.",
            ),
            ("dlq_error_message", "Why, in words."),
            ("dlq_time", "When it was dead-lettered (RFC 3339)."),
        ] {
            object.insert(name.to_owned(), text(description));
            required.push(name);
        }
    }
    let name = if dead_letter {
        format!("{ty}.dead-letter")
    } else {
        ty.to_owned()
    };
    json!({
        "name": name,
        "title": if dead_letter { format!("Dead-lettered {ty}") } else { ty.to_owned() },
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": headers,
            "required": required,
        },
        "payload": {"$ref": format!("#/components/schemas/{ty}")},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The aggregate id (wallet id; the source wallet's for a transfer; the user id for user events).",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            },
        },
    })
}

/// The document as committed: pretty-printed, with a final newline.
pub fn document_text(
    bindings: &EventBindings,
    dead_letter_suffix: &str,
    consumed: &[EventType],
) -> String {
    let mut text = serde_json::to_string_pretty(&document(bindings, dead_letter_suffix, consumed))
        .unwrap_or_else(|_| unreachable!("a JSON value always serializes"));
    text.push('\n');
    text
}
