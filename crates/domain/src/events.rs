//! Domain events and their JSON payloads.
//!
//! The payload of each event is its own JSON object: shared [`EventMetadata`] fields first,
//! then the event's data. This JSON is what the outbox stores and what Kafka consumers
//! receive as the CloudEvent `data`. Consumers must ignore fields they do not know; a
//! breaking change gets a new `schema_version` (and a new CloudEvent type version).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::analytics::{VelocityExceeded, VolumeComputed};
use crate::ids::{EventId, HoldId, TransactionId, UserId, WalletId};
use crate::money::{Currency, Money};
use crate::wallet_status::WalletStatus;

/// What every event carries besides its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventMetadata {
    /// Unique and stable: a re-sent event keeps its id, so consumers can dedupe by it.
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    /// The aggregate the event belongs to; also the Kafka key, so its events stay in order.
    pub aggregate_id: Uuid,
    /// Groups the events caused by one client operation (the request's `X-Correlation-Id`).
    pub correlation_id: String,
    pub schema_version: u32,
    /// Who caused the event: the authenticated principal of the request. Absent only on
    /// events written before requests were authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// An authenticated principal: the issuer of its access token and the subject it names.
/// Together they identify who acted; neither alone does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub issuer: String,
    pub subject: String,
}

/// Where a command comes from: the clock reading and correlation id its events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    occurred_at: DateTime<Utc>,
    correlation_id: String,
    actor: Option<Actor>,
}

impl EventContext {
    /// Truncates `now` to microseconds, the precision PostgreSQL stores, so an event and
    /// the rows written with it carry the same instant.
    pub fn new(now: DateTime<Utc>, correlation_id: impl Into<String>) -> Self {
        Self {
            occurred_at: now.trunc_subsecs(6),
            correlation_id: correlation_id.into(),
            actor: None,
        }
    }

    /// The same context, naming who acts.
    pub fn acted_by(self, actor: Actor) -> Self {
        Self {
            actor: Some(actor),
            ..self
        }
    }

    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    /// The metadata of an event of `event_type` about `aggregate_id` (the wallet's or the
    /// user's id), at its type's current `schema_version`.
    pub(crate) fn metadata(
        &self,
        event_type: EventType,
        aggregate_id: impl Into<Uuid>,
    ) -> EventMetadata {
        EventMetadata {
            event_id: EventId::new(),
            occurred_at: self.occurred_at,
            aggregate_id: aggregate_id.into(),
            correlation_id: self.correlation_id.clone(),
            schema_version: event_type.schema_version(),
            actor: self.actor.clone(),
        }
    }
}

/// A wallet was opened with a zero balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WalletCreated {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    pub user_id: UserId,
    /// The wallet's display name, as the API accepted it: 1 to 100 characters, not blank,
    /// no control characters.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    pub currency: Currency,
}

/// Money was deposited into a wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsAdded {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    /// The deposit's id (as returned by the API).
    pub transaction_id: TransactionId,
    pub amount: Money,
    pub balance_after: Money,
}

/// A user signed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub user_id: UserId,
    /// As the user wrote it (trimmed); compare addresses case-insensitively.
    pub email: String,
    pub name: String,
}

/// Money was withdrawn from a wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsWithdrawn {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    /// The withdrawal's id (as returned by the API).
    pub transaction_id: TransactionId,
    /// What left the wallet; always positive.
    pub amount: Money,
    pub balance_after: Money,
}

/// Money moved from one wallet to another of the same currency, in one step.
///
/// One event describes both sides. It belongs to the source wallet (its `aggregate_id`, and
/// so its Kafka key, is `from_wallet_id`), so it is ordered with the source wallet's other
/// events; consumers that follow the destination wallet read `to_wallet_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsTransferred {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub from_wallet_id: WalletId,
    pub to_wallet_id: WalletId,
    /// The transfer's id (as returned by the API).
    pub transfer_id: TransactionId,
    /// What moved; always positive.
    pub amount: Money,
    pub from_balance_after: Money,
    pub to_balance_after: Money,
}

/// Money arrived in a wallet from another wallet: the destination side of a transfer
/// (`FundsTransferred` belongs to the source) or of a hold's capture to a target
/// (`HoldCaptured` belongs to the held wallet). It belongs to the receiving wallet (its
/// `aggregate_id`, Kafka key and stream), so every change of a wallet is one event keyed by
/// that wallet, and its `sequence` has no gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsReceived {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    pub from_wallet_id: WalletId,
    /// The transfer's id, or the capture's ledger transaction.
    pub transaction_id: TransactionId,
    /// The hold whose capture sent the money; absent for a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<HoldId>,
    /// What arrived; always positive.
    pub amount: Money,
    pub balance_after: Money,
}

/// A wallet was frozen, unfrozen or closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WalletStatusChanged {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    pub from: WalletStatus,
    pub to: WalletStatus,
}

/// Money was reserved in a wallet by a hold (docs/holds.md): its balance is unchanged, its
/// available amount is lower until the hold is captured, voided or expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldPlaced {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    /// The hold's id (as returned by the API), also its ledger transaction's id.
    pub hold_id: HoldId,
    pub wallet_id: WalletId,
    /// Where a capture sends the money; absent: out of the wallet, as a withdrawal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet_id: Option<WalletId>,
    /// What is reserved; always positive.
    pub amount: Money,
    /// From this instant on the hold is released, whether or not `HoldExpired` was sent.
    pub expires_at: DateTime<Utc>,
    /// The wallet's available amount (balance minus pending holds) once this one is placed.
    pub available_after: Money,
}

/// A hold was captured: `amount` left the wallet (to `to_wallet_id`, or out as a
/// withdrawal) and `released` (the rest of the hold) is available again. Belongs to the
/// held wallet (its Kafka key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldCaptured {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub hold_id: HoldId,
    pub wallet_id: WalletId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet_id: Option<WalletId>,
    /// The capture's ledger transaction (as in the wallet's transactions).
    pub transaction_id: TransactionId,
    /// What moved; positive, at most the hold's amount.
    pub amount: Money,
    /// What was held and not captured: released, not moved (zero or positive).
    pub released: Money,
    pub balance_after: Money,
    /// The target wallet's balance after, when the hold names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_balance_after: Option<Money>,
}

/// A hold was voided by a client: its whole amount is available again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldVoided {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub hold_id: HoldId,
    pub wallet_id: WalletId,
    /// The release's ledger transaction.
    pub transaction_id: TransactionId,
    /// What was released; always positive.
    pub amount: Money,
}

/// A hold that reached `expires_at` pending was recorded as expired (by the sweeper). It
/// stopped reserving money at `expires_at`, before this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldExpired {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub hold_id: HoldId,
    pub wallet_id: WalletId,
    /// The release's ledger transaction.
    pub transaction_id: TransactionId,
    pub amount: Money,
    pub expires_at: DateTime<Utc>,
}

/// What a caller of [`EventType::visit_payload`] does with the payload type of an event
/// type (e.g. generate its JSON Schema), without a match of its own over every type.
pub trait PayloadVisitor {
    type Output;
    fn visit<T>(self) -> Self::Output
    where
        T: JsonSchema + Serialize + for<'de> Deserialize<'de>;
}

/// Declares every domain event once: its [`EventType`] (name, whether the analytics job
/// derives it, its payload's `schema_version`) and its [`DomainEvent`] variant and payload
/// type. Everything that goes by event type (names, JSON in and out, metadata, conversions,
/// the payload visitor) is generated from this one list.
macro_rules! domain_events {
    ($(
        $(#[$doc:meta])*
        $variant:ident($payload:ty) { derived: $derived:literal, version: $version:literal }
    ),+ $(,)?) => {
        /// The kinds of domain event; the name is stored in the outbox's `event_type` column.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )+
        }

        impl EventType {
            pub const ALL: [EventType; 0 $(+ domain_events!(@one $variant))+] =
                [$(EventType::$variant),+];

            /// Derived by the analytics job from other events, not written by a command
            /// through the outbox: the outbox never holds one, and the audit does not look
            /// for them.
            pub fn is_derived(self) -> bool {
                match self {
                    $(EventType::$variant => $derived,)+
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => stringify!($variant),)+
                }
            }

            /// The version its payload is written with today (`schema_version`, and the
            /// CloudEvent type's `.v<N>`); a breaking change of one event type makes a new
            /// version of that type only. See docs/events.md.
            pub const fn schema_version(self) -> u32 {
                match self {
                    $(EventType::$variant => $version,)+
                }
            }

            /// Hands the payload type of this event type to `visitor`.
            pub fn visit_payload<V: PayloadVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(EventType::$variant => visitor.visit::<$payload>(),)+
                }
            }
        }

        /// Any domain event.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum DomainEvent {
            $($variant($payload),)+
        }

        impl DomainEvent {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(DomainEvent::$variant(_) => EventType::$variant,)+
                }
            }

            pub fn metadata(&self) -> &EventMetadata {
                match self {
                    $(DomainEvent::$variant(e) => &e.metadata,)+
                }
            }

            /// The JSON payload (without the type, which travels beside it).
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(DomainEvent::$variant(e) => serde_json::to_value(e),)+
                }
            }

            /// Reads a payload back, given the type it was stored or sent with.
            pub fn from_json(
                event_type: EventType,
                payload: serde_json::Value,
            ) -> Result<Self, serde_json::Error> {
                Ok(match event_type {
                    $(EventType::$variant => DomainEvent::$variant(serde_json::from_value(payload)?),)+
                })
            }
        }

        $(
            impl From<$payload> for DomainEvent {
                fn from(e: $payload) -> Self {
                    DomainEvent::$variant(e)
                }
            }
        )+
    };
    (@one $variant:ident) => {
        1
    };
}

domain_events! {
    WalletCreated(WalletCreated) { derived: false, version: 1 },
    FundsAdded(FundsAdded) { derived: false, version: 1 },
    UserCreated(UserCreated) { derived: false, version: 1 },
    FundsWithdrawn(FundsWithdrawn) { derived: false, version: 1 },
    FundsTransferred(FundsTransferred) { derived: false, version: 1 },
    WalletStatusChanged(WalletStatusChanged) { derived: false, version: 1 },
    HoldPlaced(HoldPlaced) { derived: false, version: 1 },
    HoldCaptured(HoldCaptured) { derived: false, version: 1 },
    HoldVoided(HoldVoided) { derived: false, version: 1 },
    HoldExpired(HoldExpired) { derived: false, version: 1 },
    FundsReceived(FundsReceived) { derived: false, version: 1 },
    /// Derived by the analytics job, not by a command: see [`crate::analytics`].
    VolumeComputed(VolumeComputed) { derived: true, version: 1 },
    /// Derived by the analytics job, not by a command: see [`crate::analytics`].
    WalletVelocityExceeded(VelocityExceeded) { derived: true, version: 1 },
}

impl EventType {
    /// The events that move money in or out of a wallet's balance: one per balance entry
    /// of each wallet they name (what the activity read model adds up). Placing, voiding
    /// and expiring a hold move none.
    pub const BALANCE_MOVES: [EventType; 4] = [
        EventType::FundsAdded,
        EventType::FundsWithdrawn,
        EventType::FundsTransferred,
        EventType::HoldCaptured,
    ];
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metadata(aggregate_id: Uuid) -> EventMetadata {
        EventMetadata {
            event_id: EventId::from_uuid(Uuid::from_u128(
                0x0190_0000_0000_7000_8000_0000_0000_0001,
            )),
            occurred_at: "2026-01-02T03:04:05.123456Z".parse().expect("RFC 3339"),
            aggregate_id,
            correlation_id: "corr-1".to_owned(),
            schema_version: 1,
            actor: Some(Actor {
                issuer: "https://sso.example.com".to_owned(),
                subject: "alice".to_owned(),
            }),
        }
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, "USD".parse().expect("USD is ISO 4217"))
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Each new event next to the exact JSON consumers receive; they must round-trip.
    fn examples() -> Vec<(DomainEvent, serde_json::Value)> {
        let meta = json!({
            "event_id": "01900000-0000-7000-8000-000000000001",
            "occurred_at": "2026-01-02T03:04:05.123456Z",
            "correlation_id": "corr-1",
            "schema_version": 1,
            "actor": {"issuer": "https://sso.example.com", "subject": "alice"},
        });
        let with_meta = |aggregate_id: Uuid, data: serde_json::Value| {
            let mut value = meta.clone();
            value["aggregate_id"] = json!(aggregate_id);
            for (k, v) in data.as_object().expect("an object") {
                value[k] = v.clone();
            }
            value
        };
        vec![
            (
                UserCreated {
                    metadata: metadata(id(1)),
                    user_id: id(1).into(),
                    email: "Ada@Example.com".to_owned(),
                    name: "Ada".to_owned(),
                }
                .into(),
                with_meta(
                    id(1),
                    json!({"user_id": id(1), "email": "Ada@Example.com", "name": "Ada"}),
                ),
            ),
            (
                FundsWithdrawn {
                    metadata: metadata(id(2)),
                    wallet_id: id(2).into(),
                    transaction_id: id(3).into(),
                    amount: usd(250),
                    balance_after: usd(800),
                }
                .into(),
                with_meta(
                    id(2),
                    json!({
                        "wallet_id": id(2),
                        "transaction_id": id(3),
                        "amount": {"value": "2.50", "currency": "USD"},
                        "balance_after": {"value": "8.00", "currency": "USD"},
                    }),
                ),
            ),
            (
                FundsTransferred {
                    metadata: metadata(id(2)),
                    from_wallet_id: id(2).into(),
                    to_wallet_id: id(4).into(),
                    transfer_id: id(5).into(),
                    amount: usd(1000),
                    from_balance_after: usd(0),
                    to_balance_after: usd(1050),
                }
                .into(),
                with_meta(
                    id(2),
                    json!({
                        "from_wallet_id": id(2),
                        "to_wallet_id": id(4),
                        "transfer_id": id(5),
                        "amount": {"value": "10.00", "currency": "USD"},
                        "from_balance_after": {"value": "0.00", "currency": "USD"},
                        "to_balance_after": {"value": "10.50", "currency": "USD"},
                    }),
                ),
            ),
            (
                FundsReceived {
                    metadata: metadata(id(4)),
                    wallet_id: id(4).into(),
                    from_wallet_id: id(2).into(),
                    transaction_id: id(5).into(),
                    hold_id: None,
                    amount: usd(1000),
                    balance_after: usd(1050),
                }
                .into(),
                with_meta(
                    id(4),
                    json!({
                        "wallet_id": id(4),
                        "from_wallet_id": id(2),
                        "transaction_id": id(5),
                        "amount": {"value": "10.00", "currency": "USD"},
                        "balance_after": {"value": "10.50", "currency": "USD"},
                    }),
                ),
            ),
            (
                FundsReceived {
                    metadata: metadata(id(4)),
                    wallet_id: id(4).into(),
                    from_wallet_id: id(2).into(),
                    transaction_id: id(6).into(),
                    hold_id: Some(id(7).into()),
                    amount: usd(5),
                    balance_after: usd(1055),
                }
                .into(),
                with_meta(
                    id(4),
                    json!({
                        "wallet_id": id(4),
                        "from_wallet_id": id(2),
                        "transaction_id": id(6),
                        "hold_id": id(7),
                        "amount": {"value": "0.05", "currency": "USD"},
                        "balance_after": {"value": "10.55", "currency": "USD"},
                    }),
                ),
            ),
            (
                WalletStatusChanged {
                    metadata: metadata(id(2)),
                    wallet_id: id(2).into(),
                    from: WalletStatus::Active,
                    to: WalletStatus::Frozen,
                }
                .into(),
                with_meta(
                    id(2),
                    json!({"wallet_id": id(2), "from": "active", "to": "frozen"}),
                ),
            ),
        ]
    }

    #[test]
    fn new_events_have_flat_metadata_money_objects_and_lower_case_statuses() {
        for (event, expected) in examples() {
            let json = event.to_json().expect("serializes");
            assert_eq!(json, expected, "{}", event.event_type());
            let back = DomainEvent::from_json(event.event_type(), json).expect("deserializes");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn payloads_with_unknown_fields_still_read_and_wrong_statuses_do_not() {
        let (event, mut json) = examples().pop().expect("has examples");
        json["added_in_a_later_version"] = json!(true);
        assert_eq!(
            DomainEvent::from_json(EventType::WalletStatusChanged, json.clone()).ok(),
            Some(event)
        );
        json["to"] = json!("Frozen");
        assert!(DomainEvent::from_json(EventType::WalletStatusChanged, json).is_err());
    }

    #[test]
    fn events_written_before_authentication_read_without_an_actor_and_write_none() {
        let (event, mut json) = examples().pop().expect("has examples");
        json.as_object_mut().expect("object").remove("actor");
        let old = DomainEvent::from_json(EventType::WalletStatusChanged, json.clone())
            .expect("an event without actor reads");
        assert_eq!(old.metadata().actor, None);
        assert_ne!(old, event);
        assert_eq!(
            old.to_json().expect("serializes"),
            json,
            "no `actor: null` is written"
        );
    }

    #[test]
    fn every_event_type_has_its_own_name_and_variant() {
        let names: std::collections::HashSet<&str> =
            EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        for (event, _) in examples() {
            assert!(EventType::ALL.contains(&event.event_type()));
        }
    }

    #[test]
    fn events_made_by_commands_carry_their_own_types_schema_version() {
        let ctx = EventContext::new(Utc::now(), "c");
        for event_type in EventType::ALL {
            let metadata = ctx.metadata(event_type, Uuid::from_u128(1));
            assert_eq!(metadata.schema_version, event_type.schema_version());
            assert!(event_type.schema_version() >= 1, "{event_type}");
        }
        // Every payload type reads back what it wrote, through the one declaration.
        for (event, json) in examples() {
            let back = DomainEvent::from_json(event.event_type(), json).expect("reads back");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn event_type_names_round_trip_and_unknown_names_fail() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!("walletCreated".parse::<EventType>().is_err());
    }
}
