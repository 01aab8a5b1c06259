//! [`Admission`]: what a message must be before any handler sees it. Our topics can be
//! written by anyone with write access, so the runtime trusts nothing it reads:
//!
//! 1. `ce_source` is on the allow-list (class `untrusted-source`);
//! 2. `ce_type` is a Wallet Hub type (`unknown-type`) of a version we know
//!    (`unknown-version`: a known type with another `.v<N>`, or data whose
//!    `schema_version` is not the type's);
//! 3. `dataschema`, when present, names that type's schema (`schema-invalid`);
//! 4. the data is JSON valid against the type's schema (`schema-invalid`).
//!
//! Anything refused is dead-lettered with that class; nothing is retried.

use std::sync::Arc;

use cloudevents::{AttributesReader, Data, Event};
use domain::EventType;
use event_bindings::schemas::{schema_path, schema_version};
use event_bindings::{SchemaValidators, cloud_event_type};
use serde_json::Value;

/// Dead-letter classes of refused messages (the `dlq_error_class` header).
pub mod classes {
    pub const UNTRUSTED_SOURCE: &str = "untrusted-source";
    pub const UNKNOWN_TYPE: &str = "unknown-type";
    pub const UNKNOWN_VERSION: &str = "unknown-version";
    pub const SCHEMA_INVALID: &str = "schema-invalid";
}

/// The checks, built once per consumer (compiling the schemas is the costly part).
#[derive(Debug, Clone)]
pub struct Admission {
    trusted_sources: Vec<String>,
    validators: Arc<SchemaValidators>,
}

/// Why a message was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub class: &'static str,
    pub message: String,
}

impl Admission {
    /// Accepts events whose `ce_source` is one of `trusted_sources`, exactly.
    pub fn new(trusted_sources: Vec<String>) -> Self {
        Self {
            trusted_sources,
            validators: Arc::new(SchemaValidators::new()),
        }
    }

    pub fn check(&self, event: &Event) -> Result<(), Refusal> {
        let refuse = |class, message: String| Err(Refusal { class, message });
        let source = event.source().as_str();
        if !self.trusted_sources.iter().any(|s| s == source) {
            return refuse(
                classes::UNTRUSTED_SOURCE,
                format!("ce_source `{source}` is not on the allow-list"),
            );
        }
        let ty = event.ty();
        let Some(event_type) = EventType::ALL
            .into_iter()
            .find(|t| cloud_event_type(*t) == ty)
        else {
            let known_stem = EventType::ALL
                .into_iter()
                .any(|t| stem(cloud_event_type(t)) == stem(ty));
            return if known_stem {
                refuse(
                    classes::UNKNOWN_VERSION,
                    format!("`{ty}` is a version of a known type that this consumer does not read"),
                )
            } else {
                refuse(
                    classes::UNKNOWN_TYPE,
                    format!("unknown CloudEvent type `{ty}`"),
                )
            };
        };
        if let Some(dataschema) = event.dataschema() {
            let expected = format!("/{}", schema_path(event_type));
            if !dataschema.as_str().ends_with(&expected) {
                return refuse(
                    classes::SCHEMA_INVALID,
                    format!("dataschema `{dataschema}` is not the schema of `{ty}`"),
                );
            }
        }
        let data: Value = match event.data() {
            Some(Data::Json(value)) => value.clone(),
            Some(Data::Binary(bytes)) => match serde_json::from_slice(bytes) {
                Ok(value) => value,
                Err(error) => {
                    return refuse(
                        classes::SCHEMA_INVALID,
                        format!("data is not JSON: {error}"),
                    );
                }
            },
            Some(Data::String(text)) => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(error) => {
                    return refuse(
                        classes::SCHEMA_INVALID,
                        format!("data is not JSON: {error}"),
                    );
                }
            },
            None => return refuse(classes::SCHEMA_INVALID, "the event has no data".to_owned()),
        };
        let expected_version = schema_version(event_type);
        match data.get("schema_version").and_then(Value::as_u64) {
            Some(version) if version == u64::from(expected_version) => {}
            Some(version) => {
                return refuse(
                    classes::UNKNOWN_VERSION,
                    format!(
                        "schema_version {version} of `{ty}` is unknown (expected {expected_version})"
                    ),
                );
            }
            None => {} // The schema names what is missing or wrong.
        }
        self.validators
            .validate(ty, &data)
            .map_err(|violation| Refusal {
                class: classes::SCHEMA_INVALID,
                message: violation.to_string(),
            })
    }
}

/// A CloudEvent type without its `.v<N>` suffix.
fn stem(ty: &str) -> &str {
    match ty.rsplit_once('.') {
        Some((stem, version))
            if version.len() > 1
                && version.starts_with('v')
                && version[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            stem
        }
        _ => ty,
    }
}

#[cfg(test)]
mod tests {
    use cloudevents::{EventBuilder, EventBuilderV10};
    use serde_json::json;

    use super::*;

    const TYPE: &str = "io.wallethub.wallet.created.v1";

    fn data() -> Value {
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

    fn event(source: &str, ty: &str, data: Value) -> Event {
        EventBuilderV10::new()
            .id("01900000-0000-7000-8000-000000000001")
            .source(source)
            .ty(ty)
            .data_with_schema(
                "application/json",
                format!("http://h/schemas/{ty}.json"),
                data.to_string().into_bytes(),
            )
            .build()
            .expect("valid CloudEvent")
    }

    fn class(result: Result<(), Refusal>) -> &'static str {
        result.map_or_else(|r| r.class, |()| "admitted")
    }

    #[test]
    fn only_trusted_known_current_and_valid_events_are_admitted() {
        let admission = Admission::new(vec!["/wallet-hub".to_owned()]);
        assert_eq!(
            class(admission.check(&event("/wallet-hub", TYPE, data()))),
            "admitted"
        );
        assert_eq!(
            class(admission.check(&event("/evil", TYPE, data()))),
            classes::UNTRUSTED_SOURCE
        );
        assert_eq!(
            class(admission.check(&event(
                "/wallet-hub",
                "io.wallethub.wallet.exploded.v1",
                data()
            ))),
            classes::UNKNOWN_TYPE
        );
        assert_eq!(
            class(admission.check(&event(
                "/wallet-hub",
                "io.wallethub.wallet.created.v2",
                data()
            ))),
            classes::UNKNOWN_VERSION
        );
        let mut v2 = data();
        v2["schema_version"] = json!(2);
        assert_eq!(
            class(admission.check(&event("/wallet-hub", TYPE, v2))),
            classes::UNKNOWN_VERSION
        );
        let mut bad = data();
        bad["wallet_id"] = json!(42);
        assert_eq!(
            class(admission.check(&event("/wallet-hub", TYPE, bad))),
            classes::SCHEMA_INVALID
        );
    }

    #[test]
    fn a_dataschema_naming_another_type_is_refused() {
        let admission = Admission::new(vec!["/wallet-hub".to_owned()]);
        let event = EventBuilderV10::new()
            .id("1")
            .source("/wallet-hub")
            .ty(TYPE)
            .data_with_schema(
                "application/json",
                "http://h/schemas/io.wallethub.funds.added.v1.json",
                data().to_string().into_bytes(),
            )
            .build()
            .expect("valid CloudEvent");
        assert_eq!(class(admission.check(&event)), classes::SCHEMA_INVALID);
    }

    #[test]
    fn version_suffixes_are_recognised() {
        assert_eq!(
            stem("io.wallethub.wallet.created.v12"),
            "io.wallethub.wallet.created"
        );
        assert_eq!(
            stem("io.wallethub.wallet.created"),
            "io.wallethub.wallet.created"
        );
        assert_eq!(stem("a.v"), "a.v");
    }
}
