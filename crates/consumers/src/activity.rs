//! `WalletActivityProjection`: the activity read model. Each money event adds to the
//! wallet's running totals, once (the inbox row commits with the update), so redelivery
//! and replay leave the totals unchanged.

use cloudevents::AttributesReader;
use domain::{DomainEvent, EventType};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;
use store::activity::{self, Direction, Movement};

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct WalletActivityProjection {
    pool: PgPool,
}

impl WalletActivityProjection {
    pub const NAME: &'static str = "wallet-activity";
    /// The event types it reads (their topics are its subscription): the money movements.
    pub const EVENT_TYPES: &'static [EventType] = &[
        EventType::FundsAdded,
        EventType::FundsWithdrawn,
        EventType::FundsTransferred,
    ];

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl EventHandler for WalletActivityProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let event = event_bindings::decode(&received.event)
            .map_err(|error| HandlerError::Permanent(Box::new(error)))?;
        let at = event.metadata().occurred_at;
        let movement = |wallet_id, direction, amount| Movement {
            wallet_id,
            direction,
            amount,
            at,
        };
        let movements: Vec<Movement> = match &event {
            DomainEvent::FundsAdded(e) => vec![movement(e.wallet_id, Direction::In, e.amount)],
            DomainEvent::FundsWithdrawn(e) => {
                vec![movement(e.wallet_id, Direction::Out, e.amount)]
            }
            DomainEvent::FundsTransferred(e) => vec![
                movement(e.from_wallet_id, Direction::Out, e.amount),
                movement(e.to_wallet_id, Direction::In, e.amount),
            ],
            other @ (DomainEvent::WalletCreated(_)
            | DomainEvent::UserCreated(_)
            | DomainEvent::WalletStatusChanged(_)) => {
                return Err(HandlerError::Permanent(
                    format!("{} is not a money movement", other.event_type()).into(),
                ));
            }
        };
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let source = received.event.source().as_str();
        if !store::inbox::record(&mut tx, Self::NAME, source, received.event.id())
            .await
            .map_err(classify)?
        {
            return Ok(Outcome::Duplicate);
        }
        for movement in &movements {
            activity::apply(&mut tx, movement).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Outcome::Applied)
    }
}
