//! `WalletCreatedEventConsumer`: welcomes the owner of every new wallet, once.

use domain::{DomainEvent, EventType, WalletCreated, WalletName};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;

use crate::errors::classify;
use crate::notifications::send_welcomes;

#[derive(Debug, Clone)]
pub struct WalletCreatedEventConsumer {
    pool: PgPool,
}

impl WalletCreatedEventConsumer {
    pub const NAME: &'static str = "wallet-created-welcome";
    /// The event types it reads (their topics are its subscription).
    pub const EVENT_TYPES: &'static [EventType] = &[EventType::WalletCreated];

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The event's `WalletCreated`, refused when it is another event or names the wallet in a
/// way the API would not have accepted (the name goes into a message a person reads).
fn wallet_created(received: &ReceivedEvent) -> Result<WalletCreated, HandlerError> {
    let event = match event_bindings::decode(&received.event) {
        Ok(DomainEvent::WalletCreated(event)) => event,
        Ok(other) => {
            return Err(HandlerError::Permanent(
                format!("expected WalletCreated, got {}", other.event_type()).into(),
            ));
        }
        Err(error) => return Err(HandlerError::Permanent(Box::new(error))),
    };
    if let Err(error) = WalletName::parse(&event.name) {
        return Err(HandlerError::Permanent(Box::new(error)));
    }
    Ok(event)
}

impl EventHandler for WalletCreatedEventConsumer {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let outcomes = self.handle_batch(std::slice::from_ref(received)).await?;
        Ok(outcomes[0])
    }

    /// One transaction: the inbox rows in one statement, then the welcomes of the new
    /// events in one statement. Any event it refuses fails the whole batch (the runtime
    /// then applies the events one by one).
    async fn handle_batch(&self, batch: &[ReceivedEvent]) -> Result<Vec<Outcome>, HandlerError> {
        let events = batch
            .iter()
            .map(wallet_created)
            .collect::<Result<Vec<_>, _>>()?;
        let keys = crate::inbox::keys(batch);
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let new = store::inbox::record_all(&mut tx, Self::NAME, &keys)
            .await
            .map_err(classify)?;
        let fresh: Vec<WalletCreated> = events
            .into_iter()
            .zip(&new)
            .filter_map(|(event, &new)| new.then_some(event))
            .collect();
        let sent = send_welcomes(&mut tx, &fresh).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        for (event, sent) in fresh.iter().zip(sent) {
            tracing::info!(wallet_id = %event.wallet_id, sent, "welcome notification");
        }
        Ok(crate::inbox::outcomes(batch, &new))
    }
}
