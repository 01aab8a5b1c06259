//! Domain events and their JSON payloads.
//!
//! The payload of each event is its own JSON object: shared [`EventMetadata`] fields first,
//! then the event's data. This JSON is what the outbox stores and what Kafka consumers
//! receive as the CloudEvent `data`. Consumers must ignore fields they do not know; a
//! breaking change gets a new `schema_version` (and a new CloudEvent type version).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::{Currency, Money};

/// What every event carries besides its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Unique and stable: a re-sent event keeps its id, so consumers can dedupe by it.
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The aggregate the event belongs to; also the Kafka key, so its events stay in order.
    pub aggregate_id: Uuid,
    /// Groups the events caused by one client operation (the request's `X-Correlation-Id`).
    pub correlation_id: String,
    pub schema_version: u32,
}

/// Where a command comes from: the clock reading and correlation id its events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    occurred_at: DateTime<Utc>,
    correlation_id: String,
}

impl EventContext {
    /// Truncates `now` to microseconds, the precision PostgreSQL stores, so an event and
    /// the rows written with it carry the same instant.
    pub fn new(now: DateTime<Utc>, correlation_id: impl Into<String>) -> Self {
        Self {
            occurred_at: now.trunc_subsecs(6),
            correlation_id: correlation_id.into(),
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    pub(crate) fn metadata(&self, aggregate_id: Uuid) -> EventMetadata {
        EventMetadata {
            event_id: Uuid::now_v7(),
            occurred_at: self.occurred_at,
            aggregate_id,
            correlation_id: self.correlation_id.clone(),
            schema_version: 1,
        }
    }
}

/// A wallet was opened with a zero balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCreated {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub currency: Currency,
}

/// Money was deposited into a wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundsAdded {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: Uuid,
    /// The deposit's id (as returned by the API).
    pub transaction_id: Uuid,
    pub amount: Money,
    pub balance_after: Money,
}

/// The kinds of domain event; the name is stored in the outbox's `event_type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    WalletCreated,
    FundsAdded,
}

impl EventType {
    pub const ALL: [EventType; 2] = [EventType::WalletCreated, EventType::FundsAdded];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::WalletCreated => "WalletCreated",
            EventType::FundsAdded => "FundsAdded",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// Any domain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    WalletCreated(WalletCreated),
    FundsAdded(FundsAdded),
}

impl DomainEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            DomainEvent::WalletCreated(_) => EventType::WalletCreated,
            DomainEvent::FundsAdded(_) => EventType::FundsAdded,
        }
    }

    pub fn metadata(&self) -> &EventMetadata {
        match self {
            DomainEvent::WalletCreated(e) => &e.metadata,
            DomainEvent::FundsAdded(e) => &e.metadata,
        }
    }

    /// The JSON payload (without the type, which travels beside it).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            DomainEvent::WalletCreated(e) => serde_json::to_value(e),
            DomainEvent::FundsAdded(e) => serde_json::to_value(e),
        }
    }

    /// Reads a payload back, given the type it was stored or sent with.
    pub fn from_json(
        event_type: EventType,
        payload: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            EventType::WalletCreated => {
                DomainEvent::WalletCreated(serde_json::from_value(payload)?)
            }
            EventType::FundsAdded => DomainEvent::FundsAdded(serde_json::from_value(payload)?),
        })
    }
}

impl From<WalletCreated> for DomainEvent {
    fn from(e: WalletCreated) -> Self {
        DomainEvent::WalletCreated(e)
    }
}

impl From<FundsAdded> for DomainEvent {
    fn from(e: FundsAdded) -> Self {
        DomainEvent::FundsAdded(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip_and_unknown_names_fail() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!("walletCreated".parse::<EventType>().is_err());
    }
}
