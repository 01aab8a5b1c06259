//! The central mapping event type -> binding name -> destination topic.

use std::collections::{BTreeMap, HashMap};

use domain::EventType;

/// Binding names and default destinations, as in the original design.
const fn spec(event_type: EventType) -> (&'static str, &'static str) {
    match event_type {
        EventType::WalletCreated => ("walletCreatedEventProducer-out-0", "wallet-created-events"),
        EventType::FundsAdded => ("fundsAddedEventProducer-out-0", "funds-added-events"),
        EventType::UserCreated => ("userCreatedEventProducer-out-0", "user-created-events"),
        EventType::FundsWithdrawn => (
            "fundsWithdrawnEventProducer-out-0",
            "funds-withdrawn-events",
        ),
        EventType::FundsTransferred => (
            "fundsTransferredEventProducer-out-0",
            "funds-transferred-events",
        ),
        EventType::WalletStatusChanged => (
            "walletStatusChangedEventProducer-out-0",
            "wallet-status-events",
        ),
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
}

fn known_bindings() -> String {
    EventType::ALL
        .iter()
        .map(|t| spec(*t).0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolved bindings: every event type has exactly one destination topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBindings {
    destinations: HashMap<EventType, String>,
}

impl EventBindings {
    /// Defaults overridden by `overrides` (binding name -> topic). Binding names match
    /// case-insensitively because environment variables lose case; an unknown binding
    /// name is an error, so that a typo cannot silently keep the default.
    pub fn new(overrides: &BTreeMap<String, String>) -> Result<Self, BindingError> {
        for name in overrides.keys() {
            if !EventType::ALL
                .iter()
                .any(|t| spec(*t).0.eq_ignore_ascii_case(name))
            {
                return Err(BindingError::UnknownBinding(name.clone()));
            }
        }
        let mut destinations = HashMap::new();
        for event_type in EventType::ALL {
            let (binding, default_topic) = spec(event_type);
            // The file spells binding names as designed; environment variables arrive
            // lower-cased. When both name a binding, the environment (the other spelling)
            // wins, as every later layer does.
            let matching = overrides
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(binding));
            let topic = matching
                .clone()
                .find(|(name, _)| name.as_str() != binding)
                .or_else(|| matching.clone().next())
                .map_or(default_topic, |(_, topic)| topic.as_str());
            if topic.trim().is_empty() {
                return Err(BindingError::EmptyDestination {
                    binding: binding.to_owned(),
                });
            }
            destinations.insert(event_type, topic.to_owned());
        }
        Ok(Self { destinations })
    }

    /// The design's binding name for an event type, e.g. `walletCreatedEventProducer-out-0`.
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
}

impl Default for EventBindings {
    fn default() -> Self {
        let destinations = EventType::ALL
            .into_iter()
            .map(|t| (t, spec(t).1.to_owned()))
            .collect();
        Self { destinations }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The design's table, written out independently of `spec`.
    const DESIGN: [(EventType, &str, &str); 6] = [
        (
            EventType::WalletCreated,
            "walletCreatedEventProducer-out-0",
            "wallet-created-events",
        ),
        (
            EventType::FundsAdded,
            "fundsAddedEventProducer-out-0",
            "funds-added-events",
        ),
        (
            EventType::UserCreated,
            "userCreatedEventProducer-out-0",
            "user-created-events",
        ),
        (
            EventType::FundsWithdrawn,
            "fundsWithdrawnEventProducer-out-0",
            "funds-withdrawn-events",
        ),
        (
            EventType::FundsTransferred,
            "fundsTransferredEventProducer-out-0",
            "funds-transferred-events",
        ),
        (
            EventType::WalletStatusChanged,
            "walletStatusChangedEventProducer-out-0",
            "wallet-status-events",
        ),
    ];

    #[test]
    fn defaults_follow_the_design_for_every_event_type() {
        let covered: Vec<EventType> = DESIGN.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(covered, EventType::ALL, "the table covers every event type");
        let bindings = EventBindings::new(&BTreeMap::new()).expect("defaults are valid");
        for (event_type, binding, topic) in DESIGN {
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
    fn each_binding_can_be_overridden_on_its_own() {
        for (event_type, binding, default_topic) in DESIGN {
            let overrides = BTreeMap::from([(binding.to_uppercase(), "custom".to_owned())]);
            let bindings = EventBindings::new(&overrides).expect("known binding");
            for (other, _, other_topic) in DESIGN {
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
    fn overrides_match_binding_names_case_insensitively() {
        let overrides = BTreeMap::from([(
            "walletcreatedeventproducer-out-0".to_owned(),
            "t1".to_owned(),
        )]);
        let bindings = EventBindings::new(&overrides).expect("known binding");
        assert_eq!(bindings.destination(EventType::WalletCreated), "t1");
        assert_eq!(
            bindings.destination(EventType::FundsAdded),
            "funds-added-events"
        );
    }

    #[test]
    fn an_environment_spelling_overrides_the_file_spelling_of_the_same_binding() {
        let overrides = BTreeMap::from([
            (
                "walletCreatedEventProducer-out-0".to_owned(),
                "from-file".to_owned(),
            ),
            (
                "walletcreatedeventproducer-out-0".to_owned(),
                "from-env".to_owned(),
            ),
        ]);
        let bindings = EventBindings::new(&overrides).expect("known binding");
        assert_eq!(bindings.destination(EventType::WalletCreated), "from-env");
    }

    #[test]
    fn unknown_bindings_and_empty_topics_are_rejected() {
        let typo = BTreeMap::from([("walletCreatedProducer".to_owned(), "t".to_owned())]);
        assert!(matches!(
            EventBindings::new(&typo),
            Err(BindingError::UnknownBinding(_))
        ));
        let empty = BTreeMap::from([("fundsAddedEventProducer-out-0".to_owned(), " ".to_owned())]);
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
}
