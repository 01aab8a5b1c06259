//! CloudEvents 1.0 form of Wallet Hub events.
//!
//! | attribute         | value                                   |
//! |-------------------|-----------------------------------------|
//! | `specversion`     | `1.0`                                   |
//! | `id`              | the event id (stable across re-sends)   |
//! | `source`          | `/wallet-hub`                           |
//! | `type`            | `io.wallethub.<noun>.<verb>.v<schema>`  |
//! | `subject`         | the aggregate id (also the Kafka key)   |
//! | `time`            | when the event occurred                 |
//! | `datacontenttype` | `application/json`                      |
//! | `dataschema`      | URL of the data's JSON Schema: `<schema base>/schemas/<type>.json` |
//! | `traceparent`     | W3C trace context of the causing request (extension) |
//! | `sequence`        | the event's place in its wallet's stream: 1, 2, 3 ... with no gap, written as 19 digits with leading zeros so that string order is sequence order (extension; absent on `UserCreated`) |
//! | `data`            | the event's JSON payload                |
//!
//! The aggregate is the wallet for wallet events, the *source* wallet for a transfer (whose
//! data names both wallets), and the user for `UserCreated`.

use chrono::{DateTime, Utc};
use cloudevents::event::SpecVersion;
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue};
use cloudevents::{AttributesReader, Data, Event};
use domain::{DomainEvent, EventId, EventType};
use uuid::Uuid;

/// The CloudEvent `source` of everything Wallet Hub publishes.
pub const SOURCE: &str = "/wallet-hub";

const JSON: &str = "application/json";

/// The CloudEvents sequence extension attribute (`ce_sequence` on Kafka).
pub const SEQUENCE: &str = "sequence";

/// Digits of a written sequence: every `i64` fits, and zero-padded strings compare as
/// their numbers do (the extension requires string order to be event order).
const SEQUENCE_DIGITS: usize = 19;

/// A sequence as the `sequence` attribute carries it: 19 digits, zero-padded.
pub fn format_sequence(sequence: i64) -> String {
    format!("{sequence:0SEQUENCE_DIGITS$}")
}

/// The `sequence` attribute of a received event: `None` when it has none (events written
/// before streams, `UserCreated`); an error when it is there but not a positive number
/// (whoever can write to a topic can put anything there).
pub fn sequence(event: &Event) -> Result<Option<i64>, DecodeError> {
    let Some(value) = event.extension(SEQUENCE) else {
        return Ok(None);
    };
    let text = value.to_string();
    let invalid = || DecodeError::InvalidSequence {
        id: event.id().to_owned(),
        value: text.chars().take(40).collect(),
    };
    if text.is_empty() || text.len() > SEQUENCE_DIGITS || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    match text.parse::<i64>() {
        Ok(sequence) if sequence >= 1 => Ok(Some(sequence)),
        _ => Err(invalid()),
    }
}

/// CloudEvent `type` for a domain event type.
pub fn cloud_event_type(event_type: EventType) -> &'static str {
    match event_type {
        EventType::WalletCreated => "io.wallethub.wallet.created.v1",
        EventType::FundsAdded => "io.wallethub.funds.added.v1",
        EventType::UserCreated => "io.wallethub.user.created.v1",
        EventType::FundsWithdrawn => "io.wallethub.funds.withdrawn.v1",
        EventType::FundsTransferred => "io.wallethub.funds.transferred.v1",
        EventType::WalletStatusChanged => "io.wallethub.wallet.status-changed.v1",
        EventType::HoldPlaced => "io.wallethub.hold.placed.v1",
        EventType::HoldCaptured => "io.wallethub.hold.captured.v1",
        EventType::HoldVoided => "io.wallethub.hold.voided.v1",
        EventType::HoldExpired => "io.wallethub.hold.expired.v1",
        EventType::FundsReceived => "io.wallethub.funds.received.v1",
        EventType::VolumeComputed => "io.wallethub.analytics.volume-computed.v1",
        EventType::WalletVelocityExceeded => "io.wallethub.wallet.velocity-exceeded.v1",
    }
}

/// An event as the outbox stored it, ready to be put on the wire.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingEvent<'a> {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub aggregate_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The event's JSON payload as stored, already serialized: it becomes the record's
    /// value byte for byte (no parse and re-serialize per event on the relay's hot path).
    pub payload: &'a str,
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
    /// Its place in its wallet's stream.
    pub sequence: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build CloudEvent {event_id}")]
pub struct EncodeError {
    event_id: Uuid,
    #[source]
    source: cloudevents::message::Error,
}

/// A stored event as a CloudEvent in binary mode, whose schema is served at `dataschema`
/// ([`crate::EventBindings::message`] names it): its attributes, extensions and data,
/// handed one by one to a `BinarySerializer` (`BinaryDeserializer`, the SDK's way to turn
/// one message form into another). The relay's producer writes it straight into a Kafka
/// record, with no `Event` built and taken apart again for every message; [`encode`]
/// builds the `Event` from the same message.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    pub event: OutgoingEvent<'a>,
    pub dataschema: &'a url::Url,
}

impl BinaryDeserializer for OutgoingMessage<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        self,
        serializer: V,
    ) -> cloudevents::message::Result<R> {
        use MessageAttributeValue::{DateTime, String, Uri, UriRef};

        let event = self.event;
        let mut serializer = serializer
            .set_spec_version(SpecVersion::V10)?
            .set_attribute("id", String(event.event_id.to_string()))?
            .set_attribute(
                "type",
                String(cloud_event_type(event.event_type).to_owned()),
            )?
            .set_attribute("source", UriRef(SOURCE.to_owned()))?
            .set_attribute("datacontenttype", String(JSON.to_owned()))?
            .set_attribute("dataschema", Uri(self.dataschema.clone()))?
            .set_attribute("subject", String(event.aggregate_id.to_string()))?
            .set_attribute("time", DateTime(event.occurred_at))?;
        for (name, value) in [
            ("traceparent", event.traceparent),
            ("tracestate", event.tracestate),
        ] {
            if let Some(value) = value {
                serializer = serializer.set_extension(name, String(value.to_owned()))?;
            }
        }
        if let Some(sequence) = event.sequence {
            serializer = serializer.set_extension(SEQUENCE, String(format_sequence(sequence)))?;
        }
        serializer.end_with_data(event.payload.as_bytes().to_vec())
    }
}

/// Builds the CloudEvent for a stored event, whose schema is served at `dataschema`
/// ([`crate::EventBindings::encode`] names it).
pub fn encode(event: OutgoingEvent<'_>, dataschema: &url::Url) -> Result<Event, EncodeError> {
    OutgoingMessage { event, dataschema }
        .into_event()
        .map_err(|source| EncodeError {
            event_id: event.event_id,
            source,
        })
}

/// Why a received CloudEvent is not a Wallet Hub event we can read. All are permanent:
/// retrying the same bytes cannot succeed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown CloudEvent type `{0}`")]
    UnknownType(String),
    #[error("CloudEvent {0} has no data")]
    NoData(String),
    #[error("CloudEvent {id} data is not a valid {ty} payload")]
    InvalidPayload {
        id: String,
        ty: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("CloudEvent id `{ce_id}` differs from the payload's event_id `{payload_id}`")]
    IdMismatch { ce_id: String, payload_id: EventId },
    #[error("CloudEvent {id} has sequence `{value}`, not a positive number of at most 19 digits")]
    InvalidSequence { id: String, value: String },
}

/// Reads a received CloudEvent back into the domain event it carries.
pub fn decode(event: &Event) -> Result<DomainEvent, DecodeError> {
    let ty = event.ty();
    let event_type = EventType::ALL
        .into_iter()
        .find(|t| cloud_event_type(*t) == ty)
        .ok_or_else(|| DecodeError::UnknownType(ty.to_owned()))?;
    let invalid = |source| DecodeError::InvalidPayload {
        id: event.id().to_owned(),
        ty: ty.to_owned(),
        source,
    };
    let payload = match event.data() {
        Some(Data::Json(value)) => value.clone(),
        Some(Data::Binary(bytes)) => serde_json::from_slice(bytes).map_err(invalid)?,
        Some(Data::String(text)) => serde_json::from_str(text).map_err(invalid)?,
        None => return Err(DecodeError::NoData(event.id().to_owned())),
    };
    let domain_event = DomainEvent::from_json(event_type, payload).map_err(invalid)?;
    let payload_id = domain_event.metadata().event_id;
    if payload_id.to_string() != event.id() {
        return Err(DecodeError::IdMismatch {
            ce_id: event.id().to_owned(),
            payload_id,
        });
    }
    Ok(domain_event)
}

#[cfg(test)]
pub(crate) mod tests {
    use cloudevents::{EventBuilder, EventBuilderV10};

    use super::*;
    use domain::{
        Email, EventContext, Money, TransactionId, User, UserId, UserName, Wallet, WalletId,
        WalletName, transfer,
    };

    /// One event of each type, in the order of `EventType::ALL`.
    pub(crate) fn events() -> Vec<DomainEvent> {
        let ctx = EventContext::new(Utc::now(), "c-1");
        let usd = "USD".parse().expect("USD is ISO 4217");
        let email = Email::parse("Ada@Example.com").expect("valid email");
        let user_name = UserName::parse("Ada").expect("valid name");
        let (user, user_created) = User::create(UserId::new(), email, user_name, &ctx);
        let name = WalletName::parse("Travel").expect("valid");
        let (mut wallet, created) = Wallet::create(WalletId::new(), user.id(), name, usd, &ctx);
        let added = wallet
            .add_funds(Money::from_minor(1050, usd), TransactionId::new(), &ctx)
            .expect("valid deposit");
        let withdrawn = wallet
            .withdraw(Money::from_minor(50, usd), TransactionId::new(), &ctx)
            .expect("covered withdrawal");
        let other_name = WalletName::parse("Savings").expect("valid");
        let (mut other, _) = Wallet::create(WalletId::new(), user.id(), other_name, usd, &ctx);
        let (transferred, received) = transfer(
            &mut wallet,
            &mut other,
            Money::from_minor(1000, usd),
            TransactionId::new(),
            &ctx,
        )
        .expect("covered transfer");
        let frozen = wallet.freeze(&ctx).expect("active wallets can be frozen");
        let (volume, velocity) = analytics_events(wallet.id());
        let mut events = vec![
            created.into(),
            added.into(),
            user_created.into(),
            withdrawn.into(),
            transferred.into(),
            frozen.into(),
        ];
        events.extend(hold_events(other));
        events.push(received.into());
        events.extend([volume, velocity]);
        events
    }

    /// A hold placed, one captured, one voided and one expired on `wallet` (funded), as the
    /// write pipeline decides them.
    fn hold_events(wallet: Wallet) -> Vec<DomainEvent> {
        use domain::{Command, DecimalAmount, Expiry, Held, Outcome, Submission};
        let actor = domain::Actor {
            issuer: "https://issuer.example".to_owned(),
            subject: "ada".to_owned(),
        };
        let id = wallet.id();
        let mut wallets = std::collections::BTreeMap::from([(
            id,
            Held {
                wallet,
                owner: Some(actor.clone()),
                holds: Vec::new(),
            },
        )]);
        let now = Utc::now();
        let mut run = |command: Command, at| {
            let ctx = EventContext::new(at, "c-1").acted_by(actor.clone());
            let submission = Submission {
                command: &command,
                if_match: None,
                ctx: &ctx,
                transaction_id: TransactionId::new(),
            };
            domain::decide(&mut wallets, &submission).expect("decided")
        };
        let mut place = |seconds| {
            let decision = run(
                Command::PlaceHold {
                    wallet: id,
                    to: None,
                    amount: DecimalAmount::parse("2.00").expect("amount"),
                    expiry: Expiry::In(seconds),
                    description: None,
                },
                now,
            );
            let Outcome::HoldPlaced(hold) = &decision.outcome else {
                unreachable!("placing answers the hold")
            };
            (decision.events[0].event.clone(), hold.id)
        };
        let (placed, captured) = place(60);
        let (_, voided) = place(60);
        let (_, expired) = place(1);
        let capture = Command::CaptureHold {
            hold: captured,
            wallet: id,
            to: None,
            amount: Some(DecimalAmount::parse("1.50").expect("amount")),
            scoped: false,
        };
        let void = Command::VoidHold {
            hold: voided,
            wallet: id,
            scoped: false,
        };
        let expire = Command::ExpireHold {
            hold: expired,
            wallet: id,
        };
        vec![
            placed,
            run(capture, now).events[0].event.clone(),
            run(void, now).events[0].event.clone(),
            run(expire, now + chrono::TimeDelta::seconds(2)).events[0]
                .event
                .clone(),
        ]
    }

    /// The analytics job's two events, as it writes them (sums at its fixed scale of 4).
    fn analytics_events(wallet_id: WalletId) -> (DomainEvent, DomainEvent) {
        let minute: chrono::DateTime<Utc> = "2026-12-06T15:54:00Z".parse().expect("RFC 3339");
        let metadata = |id: &str, aggregate: uuid::Uuid| domain::EventMetadata {
            event_id: id.parse::<uuid::Uuid>().expect("uuid").into(),
            occurred_at: minute,
            aggregate_id: aggregate,
            correlation_id: "analytics".to_owned(),
            schema_version: 1,
            actor: None,
        };
        let total = |count, amount: &str| domain::VolumeTotal {
            count,
            amount: amount.to_owned(),
        };
        let volume_id = "086396a6-c966-864c-a76b-99d016f72dc6";
        let volume = domain::VolumeComputed {
            metadata: metadata(volume_id, volume_id.parse().expect("uuid")),
            minute,
            currency: "USD".parse().expect("USD"),
            deposits: total(2, "10.7500"),
            withdrawals: total(4, "4.0000"),
            transfers: total(0, "0.0000"),
        };
        let velocity = domain::VelocityExceeded {
            metadata: metadata("9be49d4f-af38-88f7-a822-51253249b4d1", wallet_id.as_uuid()),
            wallet_id,
            window_start: minute - chrono::TimeDelta::minutes(5),
            window_end: minute,
            currency: "USD".parse().expect("USD"),
            count: 4,
            amount: "4.0000".to_owned(),
            max_count: 3,
            max_amount: "10000".to_owned(),
        };
        (volume.into(), velocity.into())
    }

    #[test]
    fn cloud_event_types_are_distinct_and_name_noun_verb_and_version() {
        let mut seen = std::collections::HashSet::new();
        for event_type in EventType::ALL {
            let ty = cloud_event_type(event_type);
            assert!(seen.insert(ty), "{ty} is used twice");
            let parts: Vec<&str> = ty.split('.').collect();
            assert_eq!(parts.len(), 5, "{ty}");
            assert_eq!(&parts[..2], ["io", "wallethub"], "{ty}");
            assert_eq!(parts[4], "v1", "{ty}");
        }
        assert_eq!(
            cloud_event_type(EventType::WalletStatusChanged),
            "io.wallethub.wallet.status-changed.v1"
        );
    }

    #[test]
    fn a_transfer_is_the_source_wallets_subject_and_its_data_names_both_wallets() {
        let transferred = events()
            .into_iter()
            .find(|e| e.event_type() == EventType::FundsTransferred)
            .expect("the fixture has a transfer");
        let DomainEvent::FundsTransferred(inner) = &transferred else {
            unreachable!("found by its type")
        };
        let payload = transferred.to_json().expect("serializes").to_string();
        let meta = transferred.metadata();
        let ce = encode(
            OutgoingEvent {
                event_id: meta.event_id.as_uuid(),
                event_type: EventType::FundsTransferred,
                aggregate_id: meta.aggregate_id,
                occurred_at: meta.occurred_at,
                payload: &payload,
                traceparent: None,
                tracestate: None,
                sequence: None,
            },
            crate::EventBindings::default().dataschema(EventType::FundsTransferred),
        )
        .expect("valid CloudEvent");
        assert_eq!(ce.ty(), "io.wallethub.funds.transferred.v1");
        assert_eq!(
            ce.subject(),
            Some(inner.from_wallet_id.to_string().as_str())
        );
        let Some(Data::Binary(bytes)) = ce.data() else {
            panic!("the payload's bytes expected")
        };
        let data: serde_json::Value = serde_json::from_slice(bytes).expect("JSON data");
        assert_eq!(data["from_wallet_id"], inner.from_wallet_id.to_string());
        assert_eq!(data["to_wallet_id"], inner.to_wallet_id.to_string());
    }

    #[test]
    fn every_event_type_round_trips_through_a_cloud_event() {
        let seen: Vec<EventType> = events().iter().map(DomainEvent::event_type).collect();
        assert_eq!(seen, EventType::ALL, "the test covers every event type");
        for domain_event in events() {
            let payload = domain_event.to_json().expect("serializes").to_string();
            let meta = domain_event.metadata();
            let outgoing = OutgoingEvent {
                event_id: meta.event_id.as_uuid(),
                event_type: domain_event.event_type(),
                aggregate_id: meta.aggregate_id,
                occurred_at: meta.occurred_at,
                payload: &payload,
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                tracestate: None,
                sequence: Some(42),
            };
            let bindings = crate::EventBindings::default()
                .with_schema_base("https://wallets.example.com/")
                .expect("an absolute URL");
            let ce = bindings.encode(&outgoing).expect("valid CloudEvent");
            assert_eq!(
                ce.dataschema().map(ToString::to_string),
                Some(format!(
                    "https://wallets.example.com/schemas/{}.json",
                    cloud_event_type(domain_event.event_type())
                ))
            );
            assert_eq!(ce.id(), meta.event_id.to_string());
            assert_eq!(ce.source().as_str(), SOURCE);
            assert_eq!(ce.ty(), cloud_event_type(domain_event.event_type()));
            assert_eq!(ce.subject(), Some(meta.aggregate_id.to_string().as_str()));
            assert_eq!(ce.time(), Some(&meta.occurred_at));
            assert_eq!(ce.datacontenttype(), Some(JSON));
            assert!(ce.extension("traceparent").is_some());
            assert_eq!(
                ce.extension(SEQUENCE).map(ToString::to_string).as_deref(),
                Some("0000000000000000042")
            );
            assert_eq!(sequence(&ce).expect("a valid sequence"), Some(42));
            assert_eq!(decode(&ce).expect("decodes"), domain_event);

            // The wire form: the JSON of the CloudEvent (structured mode) decodes too.
            let wire = serde_json::to_string(&ce).expect("CloudEvent serializes");
            let back: Event = serde_json::from_str(&wire).expect("CloudEvent deserializes");
            assert_eq!(decode(&back).expect("decodes"), domain_event);
        }
    }

    #[test]
    fn sequences_are_zero_padded_so_string_order_is_number_order_and_bad_ones_are_refused() {
        assert!(format_sequence(9) < format_sequence(10));
        assert!(format_sequence(99_999) < format_sequence(100_000));
        assert_eq!(format_sequence(i64::MAX).len(), 19);
        let with = |value: &str| {
            EventBuilderV10::new()
                .id("e-1")
                .source(SOURCE)
                .ty("io.wallethub.funds.added.v1")
                .extension(SEQUENCE, value)
                .build()
                .expect("valid CloudEvent")
        };
        assert_eq!(
            sequence(&with("0000000000000000007")).expect("valid"),
            Some(7)
        );
        assert_eq!(sequence(&with("7")).expect("unpadded reads too"), Some(7));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1e3",
            "12a",
            "99999999999999999999",
            " 1",
        ] {
            assert!(
                matches!(
                    sequence(&with(bad)),
                    Err(DecodeError::InvalidSequence { .. })
                ),
                "`{bad}` must be refused"
            );
        }
        let none = EventBuilderV10::new()
            .id("e-2")
            .source(SOURCE)
            .ty("io.wallethub.user.created.v1")
            .build()
            .expect("valid CloudEvent");
        assert_eq!(sequence(&none).expect("absent is fine"), None);
    }

    #[test]
    fn unknown_types_missing_data_and_foreign_ids_are_decode_errors() {
        let unknown = EventBuilderV10::new()
            .id("1")
            .source(SOURCE)
            .ty("io.wallethub.wallet.exploded.v1")
            .build()
            .expect("valid CloudEvent");
        assert!(matches!(decode(&unknown), Err(DecodeError::UnknownType(_))));

        let no_data = EventBuilderV10::new()
            .id("1")
            .source(SOURCE)
            .ty("io.wallethub.wallet.created.v1")
            .build()
            .expect("valid CloudEvent");
        assert!(matches!(decode(&no_data), Err(DecodeError::NoData(_))));

        let events = events();
        let payload = events[0].to_json().expect("serializes");
        let wrong_id = EventBuilderV10::new()
            .id("not-the-event-id")
            .source(SOURCE)
            .ty("io.wallethub.wallet.created.v1")
            .data(JSON, payload)
            .build()
            .expect("valid CloudEvent");
        assert!(matches!(
            decode(&wrong_id),
            Err(DecodeError::IdMismatch { .. })
        ));

        let bad_json = EventBuilderV10::new()
            .id("1")
            .source(SOURCE)
            .ty("io.wallethub.funds.added.v1")
            .data(JSON, serde_json::json!({"wallet_id": 3}))
            .build()
            .expect("valid CloudEvent");
        assert!(matches!(
            decode(&bad_json),
            Err(DecodeError::InvalidPayload { .. })
        ));
    }
}
