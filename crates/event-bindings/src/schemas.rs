//! JSON Schemas (draft 2020-12) of the events' data, derived from the Rust event types.
//!
//! Each CloudEvent type has one schema, named after it: `io.wallethub.wallet.created.v1`
//! is described by `io.wallethub.wallet.created.v1.json`. The files under `schemas/` at the
//! repository root are what [`schema`] generates (a test fails when they differ), the
//! service serves them at `<schema base>/schemas/<file>`, and every event names that URL
//! in its `dataschema` attribute.
//!
//! The schemas are self-contained (no `$ref`): a consumer, a validator or the
//! compatibility check ([`crate::compat`]) needs nothing but the one document. A schema
//! pins `schema_version` to its version (`const`), so a payload of another version never
//! validates against it.

use std::collections::HashMap;

use domain::{EventType, PayloadVisitor};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::cloud_event::cloud_event_type;

/// The `schema_version` (and CloudEvent type suffix `.v<N>`) each event type is written
/// with today, as the domain declares it ([`EventType::schema_version`]). A breaking
/// change of a payload makes a new version of that type; see docs/events.md.
pub const fn schema_version(event_type: EventType) -> u32 {
    event_type.schema_version()
}

/// The URL path, below the schema base, where the schema of `event_type` is served, and
/// the file under `schemas/` that holds it: `schemas/<CloudEvent type>.json`.
pub fn schema_path(event_type: EventType) -> String {
    format!("schemas/{}", schema_file(event_type))
}

/// The schema's file name: `<CloudEvent type>.json`.
pub fn schema_file(event_type: EventType) -> String {
    format!("{}.json", cloud_event_type(event_type))
}

/// The JSON Schema of the data of `event_type`'s CloudEvents.
pub fn schema(event_type: EventType) -> Value {
    let mut schema = event_type.visit_payload(Generate);
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".to_owned(), cloud_event_type(event_type).into());
    }
    // The metadata's `schema_version` is any u32 in Rust; on the wire of this version it
    // is exactly this version.
    if let Some(version) = schema
        .pointer_mut("/properties/schema_version")
        .and_then(Value::as_object_mut)
    {
        version.clear();
        version.insert("type".to_owned(), "integer".into());
        version.insert("const".to_owned(), schema_version(event_type).into());
        version.insert(
            "description".to_owned(),
            "The payload's version; a breaking change makes a new one (and a new CloudEvent type)."
                .into(),
        );
    }
    schema
}

/// The schema text as committed under `schemas/`: pretty-printed, with a final newline.
pub fn schema_text(event_type: EventType) -> String {
    let mut text = serde_json::to_string_pretty(&schema(event_type))
        .unwrap_or_else(|_| unreachable!("a JSON value always serializes"));
    text.push('\n');
    text
}

/// Generates the JSON Schema of an event type's payload.
struct Generate;

impl PayloadVisitor for Generate {
    type Output = Value;

    fn visit<T>(self) -> Value
    where
        T: JsonSchema + serde::Serialize + for<'de> serde::Deserialize<'de>,
    {
        SchemaSettings::draft2020_12()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value()
    }
}

/// Why a payload does not conform to the schema of its CloudEvent type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaViolation {
    #[error("unknown CloudEvent type `{0}`")]
    UnknownType(String),
    /// The errors found, each with the JSON pointer of the offending value.
    #[error("{ty} data does not match its schema: {}", errors.join("; "))]
    Invalid { ty: String, errors: Vec<String> },
}

/// Compiled validators of every current event schema, keyed by CloudEvent type. Build it
/// once and share it: compiling is the expensive part.
#[derive(Debug)]
pub struct SchemaValidators {
    validators: HashMap<&'static str, jsonschema::Validator>,
}

impl SchemaValidators {
    pub fn new() -> Self {
        let validators = EventType::ALL
            .into_iter()
            .map(|event_type| {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema(event_type))
                    .unwrap_or_else(|error| {
                        unreachable!("the generated schema of {event_type} is invalid: {error}")
                    });
                (cloud_event_type(event_type), validator)
            })
            .collect();
        Self { validators }
    }

    /// Checks `data` against the schema of the CloudEvent type `ty`.
    pub fn validate(&self, ty: &str, data: &Value) -> Result<(), SchemaViolation> {
        let validator = self
            .validators
            .get(ty)
            .ok_or_else(|| SchemaViolation::UnknownType(ty.to_owned()))?;
        let errors: Vec<String> = validator
            .iter_errors(data)
            .take(5)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SchemaViolation::Invalid {
                ty: ty.to_owned(),
                errors,
            })
        }
    }
}

impl Default for SchemaValidators {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wallet_created() -> Value {
        json!({
            "event_id": "01900000-0000-7000-8000-000000000001",
            "occurred_at": "2026-01-02T03:04:05.123456Z",
            "aggregate_id": "01900000-0000-7000-8000-000000000002",
            "correlation_id": "c-1",
            "schema_version": 1,
            "wallet_id": "01900000-0000-7000-8000-000000000002",
            "user_id": "01900000-0000-7000-8000-000000000003",
            "name": "Travel",
            "currency": "USD",
        })
    }

    #[test]
    fn schemas_are_draft_2020_12_self_contained_and_pin_their_version() {
        for event_type in EventType::ALL {
            let schema = schema(event_type);
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{event_type}"
            );
            assert!(
                !schema.to_string().contains("$ref"),
                "{event_type} is self-contained"
            );
            assert_eq!(
                schema["properties"]["schema_version"]["const"],
                json!(schema_version(event_type))
            );
            assert_eq!(schema["title"], cloud_event_type(event_type));
        }
    }

    #[test]
    fn a_valid_payload_passes_and_each_kind_of_bad_one_is_named() {
        let validators = SchemaValidators::new();
        let ty = "io.wallethub.wallet.created.v1";
        assert_eq!(validators.validate(ty, &wallet_created()), Ok(()));

        let mut extra = wallet_created();
        extra["added_later"] = json!(true);
        assert_eq!(
            validators.validate(ty, &extra),
            Ok(()),
            "unknown fields are allowed: consumers ignore them"
        );

        for (field, bad) in [
            ("schema_version", json!(2)),
            ("wallet_id", json!("not-a-uuid")),
            ("occurred_at", json!("yesterday")),
            ("currency", json!("usd")),
            ("name", json!("")),
            ("name", json!("x".repeat(101))),
        ] {
            let mut payload = wallet_created();
            payload[field] = bad.clone();
            let error = validators
                .validate(ty, &payload)
                .expect_err(&format!("{field} = {bad} is refused"));
            assert!(error.to_string().contains(field), "{error}");
        }

        let mut missing = wallet_created();
        missing.as_object_mut().expect("object").remove("user_id");
        assert!(validators.validate(ty, &missing).is_err());
        assert_eq!(
            validators.validate("io.wallethub.wallet.created.v9", &wallet_created()),
            Err(SchemaViolation::UnknownType(
                "io.wallethub.wallet.created.v9".to_owned()
            ))
        );
    }

    #[test]
    fn every_event_the_domain_writes_validates_against_its_schema() {
        let validators = SchemaValidators::new();
        for event in crate::cloud_event::tests::events() {
            let ty = cloud_event_type(event.event_type());
            let data = event.to_json().expect("serializes");
            assert_eq!(validators.validate(ty, &data), Ok(()), "{ty}: {data}");
        }
    }
}
