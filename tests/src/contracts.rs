//! The event contract, checked on every record a test reads: a record Wallet Hub
//! published (`ce_source` ours, not on a dead-letter topic) names its schema in
//! `ce_dataschema`, and its data is valid against that schema. Records that tests forge
//! on purpose carry another source or sit on a dead-letter topic.

use std::sync::LazyLock;

use event_bindings::{SOURCE, SchemaValidators};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

use crate::header;

static VALIDATORS: LazyLock<SchemaValidators> = LazyLock::new(SchemaValidators::new);

/// Panics unless `message`, if Wallet Hub published it, carries a `dataschema` naming its
/// type's schema and data valid against that schema.
pub fn check_published(message: &OwnedMessage) {
    if message.topic().ends_with(".dlq") || header(message, "ce_source").as_deref() != Some(SOURCE)
    {
        return;
    }
    let ty = header(message, "ce_type").expect("our events have a ce_type");
    let dataschema = header(message, "ce_dataschema")
        .unwrap_or_else(|| panic!("{ty} on {} has no ce_dataschema", message.topic()));
    assert!(
        dataschema.ends_with(&format!("/schemas/{ty}.json")),
        "{ty}: dataschema {dataschema} names another schema"
    );
    let data: serde_json::Value =
        serde_json::from_slice(message.payload().unwrap_or_default()).expect("JSON data");
    if let Err(violation) = VALIDATORS.validate(&ty, &data) {
        panic!("{ty} on {}: {violation}", message.topic());
    }
}
