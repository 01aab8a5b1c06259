//! `WalletCreatedEventConsumer`: welcomes the owner of every new wallet, once.

use cloudevents::AttributesReader;
use domain::{DomainEvent, EventType, WalletName};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;

use crate::errors::classify;
use crate::notifications::NotificationService;

#[derive(Debug, Clone)]
pub struct WalletCreatedEventConsumer {
    pool: PgPool,
    notifications: NotificationService,
}

impl WalletCreatedEventConsumer {
    pub const NAME: &'static str = "wallet-created-welcome";
    /// The event types it reads (their topics are its subscription).
    pub const EVENT_TYPES: &'static [EventType] = &[EventType::WalletCreated];

    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            notifications: NotificationService,
        }
    }
}

impl EventHandler for WalletCreatedEventConsumer {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let event = match event_bindings::decode(&received.event) {
            Ok(DomainEvent::WalletCreated(event)) => event,
            Ok(other) => {
                return Err(HandlerError::Permanent(
                    format!("expected WalletCreated, got {}", other.event_type()).into(),
                ));
            }
            Err(error) => return Err(HandlerError::Permanent(Box::new(error))),
        };
        // The name goes into a message a person reads: it must be one the API would have
        // accepted, whoever wrote the event.
        if let Err(error) = WalletName::parse(&event.name) {
            return Err(HandlerError::Permanent(Box::new(error)));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let source = received.event.source().as_str();
        if !store::inbox::record(&mut tx, Self::NAME, source, received.event.id())
            .await
            .map_err(classify)?
        {
            tracing::info!(event_id = received.event.id(), "duplicate event skipped");
            return Ok(Outcome::Duplicate);
        }
        let sent = self
            .notifications
            .send_welcome(&mut tx, &event)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::info!(wallet_id = %event.wallet_id, sent, "welcome notification");
        Ok(Outcome::Applied)
    }
}
