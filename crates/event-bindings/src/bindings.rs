//! The central mapping event type -> binding name -> destination topic.
//!
//! Binding names are lower-case `snake_case` without double underscores, e.g.
//! `wallet_created_out`, so that the environment variable
//! `WALLET_HUB__BINDINGS__WALLET_CREATED_OUT` arrives (lower-cased by the config loader) as
//! exactly the key a TOML file writes: one spelling, and the later layer wins like for
//! every other key.

use std::collections::{BTreeMap, HashMap};

use domain::EventType;
use url::Url;

/// Binding name and default destination of each event type.
const fn spec(event_type: EventType) -> (&'static str, &'static str) {
    match event_type {
        EventType::WalletCreated => ("wallet_created_out", "wallet-created-events"),
        EventType::FundsAdded => ("funds_added_out", "funds-added-events"),
        EventType::UserCreated => ("user_created_out", "user-created-events"),
        EventType::FundsWithdrawn => ("funds_withdrawn_out", "funds-withdrawn-events"),
        EventType::FundsTransferred => ("funds_transferred_out", "funds-transferred-events"),
        EventType::WalletStatusChanged => ("wallet_status_changed_out", "wallet-status-events"),
        EventType::HoldPlaced => ("hold_placed_out", "hold-placed-events"),
        EventType::HoldCaptured => ("hold_captured_out", "hold-captured-events"),
        EventType::HoldVoided => ("hold_voided_out", "hold-voided-events"),
        EventType::HoldExpired => ("hold_expired_out", "hold-expired-events"),
        EventType::FundsReceived => ("funds_received_out", "funds-received-events"),
        // Written by the analytics job (analytics/), read by the service.
        EventType::VolumeComputed => ("analytics_volume_out", "analytics-volume-events"),
        EventType::WalletVelocityExceeded => ("wallet_velocity_out", "wallet-velocity-events"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("no binding named `{0}` (known: {known})", known = known_bindings())]
    UnknownBinding(String),
    #[error("binding `{binding}` has an empty destination")]
    EmptyDestination { binding: String },
    #[error("event type `{0}` has no binding")]
    UnknownEventType(String),
    #[error("schema base `{base}` is not an absolute URL")]
    InvalidSchemaBase {
        base: String,
        #[source]
        source: url::ParseError,
    },
}

fn known_bindings() -> String {
    EventType::ALL
        .iter()
        .map(|t| spec(*t).0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the service serves the event schemas unless configured otherwise: the default
/// API address (`api.listen`).
pub const DEFAULT_SCHEMA_BASE: &str = "http://127.0.0.1:8080";

/// Resolved bindings: every event type has exactly one destination topic, and its
/// CloudEvents name their schema below one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBindings {
    destinations: HashMap<EventType, String>,
    /// `<schema_base>/schemas/<type>.json` is each event's `dataschema`; no trailing `/`.
    schema_base: String,
    /// Each event type's `dataschema`, parsed once: the relay encodes tens of thousands of
    /// events a second, and parsing the URL for each was 7% of its CPU in a drain.
    dataschemas: HashMap<EventType, Url>,
}

/// Each event type's `dataschema` below `base` (no trailing `/`).
fn dataschemas(base: &str) -> Result<HashMap<EventType, Url>, BindingError> {
    EventType::ALL
        .into_iter()
        .map(|event_type| {
            let url = format!("{base}/{}", crate::schemas::schema_path(event_type));
            Url::parse(&url)
                .map(|url| (event_type, url))
                .map_err(|source| BindingError::InvalidSchemaBase {
                    base: base.to_owned(),
                    source,
                })
        })
        .collect()
}

impl EventBindings {
    /// Defaults overridden by `overrides` (binding name -> topic). An unknown binding name
    /// is an error, so that a typo cannot silently keep the default.
    pub fn new(overrides: &BTreeMap<String, String>) -> Result<Self, BindingError> {
        if let Some(unknown) = overrides
            .keys()
            .find(|name| !EventType::ALL.iter().any(|t| spec(*t).0 == name.as_str()))
        {
            return Err(BindingError::UnknownBinding(unknown.clone()));
        }
        let mut destinations = HashMap::new();
        for event_type in EventType::ALL {
            let (binding, default_topic) = spec(event_type);
            let topic = overrides.get(binding).map_or(default_topic, String::as_str);
            if topic.trim().is_empty() {
                return Err(BindingError::EmptyDestination {
                    binding: binding.to_owned(),
                });
            }
            destinations.insert(event_type, topic.to_owned());
        }
        Ok(Self {
            destinations,
            ..Self::default()
        })
    }

    /// The same bindings with the schemas served below `base` (an absolute URL such as
    /// `https://wallets.example.com`; a trailing `/` is dropped). Fails when `base` is not
    /// an absolute URL, so a misconfigured base stops the service at start instead of
    /// failing every event it publishes.
    pub fn with_schema_base(self, base: &str) -> Result<Self, BindingError> {
        let schema_base = base.trim_end_matches('/').to_owned();
        Ok(Self {
            dataschemas: dataschemas(&schema_base)?,
            schema_base,
            ..self
        })
    }

    /// The base URL the schemas are served below.
    pub fn schema_base(&self) -> &str {
        &self.schema_base
    }

    /// The `dataschema` of an event type's CloudEvents: where its schema is served.
    pub fn dataschema(&self, event_type: EventType) -> &Url {
        // Every EventType is inserted by `dataschemas`.
        &self.dataschemas[&event_type]
    }

    /// Builds the CloudEvent for a stored event, naming its schema.
    pub fn encode(
        &self,
        event: &crate::OutgoingEvent<'_>,
    ) -> Result<cloudevents::Event, crate::EncodeError> {
        crate::cloud_event::encode(*event, self.dataschema(event.event_type))
    }

    /// The CloudEvents message of a stored event, naming its schema: what [`Self::encode`]
    /// builds, for a producer to write without an `Event` in between.
    pub fn message<'a>(
        &'a self,
        event: crate::OutgoingEvent<'a>,
    ) -> crate::cloud_event::OutgoingMessage<'a> {
        crate::cloud_event::OutgoingMessage {
            event,
            dataschema: self.dataschema(event.event_type),
        }
    }

    /// The binding name of an event type, e.g. `wallet_created_out`.
    pub fn binding_name(event_type: EventType) -> &'static str {
        spec(event_type).0
    }

    /// The topic an event type is published to.
    pub fn destination(&self, event_type: EventType) -> &str {
        // Every EventType is inserted by `new`.
        self.destinations
            .get(&event_type)
            .map_or(spec(event_type).1, String::as_str)
    }

    /// Resolves an `event_type` column value (as stored in the outbox) to its type and topic.
    pub fn resolve(&self, event_type: &str) -> Result<(EventType, &str), BindingError> {
        let event_type: EventType = event_type
            .parse()
            .map_err(|_| BindingError::UnknownEventType(event_type.to_owned()))?;
        Ok((event_type, self.destination(event_type)))
    }

    /// All destination topics, sorted and without duplicates.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.destinations.values().map(String::as_str).collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The topics the outbox publishes to: those of the event types that are not derived
    /// by the analytics job ([`EventType::is_derived`]).
    pub fn outbox_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self
            .destinations
            .iter()
            .filter(|(t, _)| !t.is_derived())
            .map(|(_, topic)| topic.as_str())
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }
}

impl Default for EventBindings {
    fn default() -> Self {
        let destinations = EventType::ALL
            .into_iter()
            .map(|t| (t, spec(t).1.to_owned()))
            .collect();
        Self {
            destinations,
            schema_base: DEFAULT_SCHEMA_BASE.to_owned(),
            dataschemas: dataschemas(DEFAULT_SCHEMA_BASE)
                .expect("the default schema base is an absolute URL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, written out independently of `spec`.
    const TABLE: [(EventType, &str, &str); 13] = [
        (
            EventType::WalletCreated,
            "wallet_created_out",
            "wallet-created-events",
        ),
        (
            EventType::FundsAdded,
            "funds_added_out",
            "funds-added-events",
        ),
        (
            EventType::UserCreated,
            "user_created_out",
            "user-created-events",
        ),
        (
            EventType::FundsWithdrawn,
            "funds_withdrawn_out",
            "funds-withdrawn-events",
        ),
        (
            EventType::FundsTransferred,
            "funds_transferred_out",
            "funds-transferred-events",
        ),
        (
            EventType::WalletStatusChanged,
            "wallet_status_changed_out",
            "wallet-status-events",
        ),
        (
            EventType::HoldPlaced,
            "hold_placed_out",
            "hold-placed-events",
        ),
        (
            EventType::HoldCaptured,
            "hold_captured_out",
            "hold-captured-events",
        ),
        (
            EventType::HoldVoided,
            "hold_voided_out",
            "hold-voided-events",
        ),
        (
            EventType::HoldExpired,
            "hold_expired_out",
            "hold-expired-events",
        ),
        (
            EventType::FundsReceived,
            "funds_received_out",
            "funds-received-events",
        ),
        (
            EventType::VolumeComputed,
            "analytics_volume_out",
            "analytics-volume-events",
        ),
        (
            EventType::WalletVelocityExceeded,
            "wallet_velocity_out",
            "wallet-velocity-events",
        ),
    ];

    #[test]
    fn defaults_follow_the_table_for_every_event_type() {
        let covered: Vec<EventType> = TABLE.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(covered, EventType::ALL, "the table covers every event type");
        let bindings = EventBindings::new(&BTreeMap::new()).expect("defaults are valid");
        for (event_type, binding, topic) in TABLE {
            assert_eq!(EventBindings::binding_name(event_type), binding);
            assert_eq!(bindings.destination(event_type), topic);
            assert_eq!(
                bindings.resolve(event_type.as_str()),
                Ok((event_type, topic))
            );
        }
        assert_eq!(bindings, EventBindings::default());
    }

    #[test]
    fn every_event_type_has_its_own_binding_and_topic_by_default() {
        let bindings = EventBindings::default();
        assert_eq!(bindings.topics().len(), EventType::ALL.len());
        let mut names: Vec<&str> = EventType::ALL
            .into_iter()
            .map(EventBindings::binding_name)
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn binding_names_come_back_unchanged_from_an_environment_variable() {
        for event_type in EventType::ALL {
            let name = EventBindings::binding_name(event_type);
            // What the operator writes, and what the config loader makes of it: lower-cased,
            // split into a key path at `__`.
            let variable = format!("WALLET_HUB__BINDINGS__{}", name.to_uppercase());
            let path: Vec<String> = variable
                .to_lowercase()
                .split("__")
                .map(str::to_owned)
                .collect();
            assert_eq!(path, ["wallet_hub", "bindings", name], "{variable}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name} is a portable environment variable name part"
            );
        }
    }

    #[test]
    fn each_binding_can_be_overridden_on_its_own() {
        for (event_type, binding, default_topic) in TABLE {
            let overrides = BTreeMap::from([(binding.to_owned(), "custom".to_owned())]);
            let bindings = EventBindings::new(&overrides).expect("known binding");
            for (other, _, other_topic) in TABLE {
                let expected = if other == event_type {
                    "custom"
                } else {
                    other_topic
                };
                assert_eq!(bindings.destination(other), expected, "{binding}");
            }
            assert_ne!(default_topic, "custom");
        }
    }

    #[test]
    fn unknown_bindings_other_spellings_and_empty_topics_are_rejected() {
        for name in [
            "walletCreatedProducer",
            "WALLET_CREATED_OUT",
            "walletCreatedEventProducer-out-0",
        ] {
            let overrides = BTreeMap::from([(name.to_owned(), "t".to_owned())]);
            assert_eq!(
                EventBindings::new(&overrides),
                Err(BindingError::UnknownBinding(name.to_owned())),
                "{name}"
            );
        }
        let empty = BTreeMap::from([("funds_added_out".to_owned(), " ".to_owned())]);
        assert!(matches!(
            EventBindings::new(&empty),
            Err(BindingError::EmptyDestination { .. })
        ));
    }

    #[test]
    fn stored_type_names_resolve_and_unknown_ones_do_not() {
        let bindings = EventBindings::default();
        assert_eq!(
            bindings.resolve("FundsAdded"),
            Ok((EventType::FundsAdded, "funds-added-events"))
        );
        assert_eq!(
            bindings.resolve("FundsStolen"),
            Err(BindingError::UnknownEventType("FundsStolen".into()))
        );
    }

    #[test]
    fn each_dataschema_is_below_the_schema_base_and_a_base_that_is_no_url_is_refused() {
        let bindings = EventBindings::default()
            .with_schema_base("https://wallets.example.com/api/")
            .expect("an absolute URL");
        assert_eq!(bindings.schema_base(), "https://wallets.example.com/api");
        for event_type in EventType::ALL {
            assert_eq!(
                bindings.dataschema(event_type).as_str(),
                format!(
                    "https://wallets.example.com/api/{}",
                    crate::schemas::schema_path(event_type)
                )
            );
        }
        for base in ["wallets.example.com", "", "http://[::1"] {
            assert!(
                matches!(
                    EventBindings::default().with_schema_base(base),
                    Err(BindingError::InvalidSchemaBase { .. })
                ),
                "{base:?} is refused"
            );
        }
    }
}
