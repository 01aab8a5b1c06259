//! Domain events built the way the service builds them, for tests that write outbox rows or
//! put events on Kafka themselves.

use uuid::Uuid;

/// A `FundsAdded` of `minor` cents to an empty, active USD wallet `wallet_id`, built by the
/// domain (for tests that put events on Kafka themselves).
pub fn deposit_event(wallet_id: Uuid, minor: i64) -> domain::DomainEvent {
    let usd: domain::Currency = "USD".parse().expect("ISO 4217");
    let mut wallet = domain::Wallet::restore(
        domain::WalletId::from(wallet_id),
        domain::UserId::new(),
        domain::WalletName::parse("Fixture").expect("valid"),
        domain::Money::zero(usd),
        domain::WalletStatus::Active,
        1,
        chrono::Utc::now(),
    );
    let ctx = domain::EventContext::new(chrono::Utc::now(), "fixture");
    wallet
        .add_funds(
            domain::Money::from_minor(minor, usd),
            domain::TransactionId::new(),
            &ctx,
        )
        .expect("deposit")
        .into()
}

/// The CloudEvent the relay would publish for `event` (with the default schema base),
/// without a stream sequence.
pub fn cloud_event(event: &domain::DomainEvent) -> cloudevents::Event {
    sequenced_cloud_event(event, None)
}

/// The CloudEvent the relay would publish for `event` at `sequence` of its wallet's stream.
pub fn sequenced_cloud_event(
    event: &domain::DomainEvent,
    sequence: Option<i64>,
) -> cloudevents::Event {
    let payload = event.to_json().expect("serializes").to_string();
    let meta = event.metadata();
    event_bindings::EventBindings::default()
        .encode(&event_bindings::OutgoingEvent {
            event_id: meta.event_id.as_uuid(),
            event_type: event.event_type(),
            aggregate_id: meta.aggregate_id,
            occurred_at: meta.occurred_at,
            payload: &payload,
            traceparent: None,
            tracestate: None,
            sequence,
        })
        .expect("valid CloudEvent")
}

/// A `VolumeComputed` as the analytics job sends it: `deposits` (count, exact decimal) of
/// `currency` in `minute`, nothing else moved.
pub fn volume_event(
    currency: &str,
    minute: chrono::DateTime<chrono::Utc>,
    deposits: (u64, &str),
) -> domain::DomainEvent {
    let currency: domain::Currency = currency.parse().expect("ISO 4217");
    let none = || domain::VolumeTotal {
        count: 0,
        amount: "0".to_owned(),
    };
    domain::DomainEvent::VolumeComputed(domain::VolumeComputed {
        metadata: domain::EventMetadata {
            event_id: domain::EventId::new(),
            occurred_at: minute,
            aggregate_id: Uuid::now_v7(),
            correlation_id: "fixture".to_owned(),
            schema_version: domain::EventType::VolumeComputed.schema_version(),
            actor: None,
        },
        minute,
        currency,
        deposits: domain::VolumeTotal {
            count: deposits.0,
            amount: deposits.1.to_owned(),
        },
        withdrawals: none(),
        transfers: none(),
    })
}
