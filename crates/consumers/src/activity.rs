//! `WalletActivityProjection`: the activity read model. Each money event (a capture of a
//! hold too; placing, voiding and expiring one move no money) adds to the wallet's running
//! totals, once (the inbox row commits with the update), so redelivery
//! and replay leave the totals unchanged.

use domain::{DomainEvent, EventType};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;
use store::activity::{self, Movement};

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct WalletActivityProjection {
    pool: PgPool,
}

impl WalletActivityProjection {
    pub const NAME: &'static str = "wallet-activity";
    /// The event types it reads (their topics are its subscription): the money movements.
    pub const EVENT_TYPES: &'static [EventType] = &EventType::BALANCE_MOVES;

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// What one money event changes: one movement, two for a transfer.
fn movements(received: &ReceivedEvent) -> Result<Vec<Movement>, HandlerError> {
    let event = event_bindings::decode(&received.event)
        .map_err(|error| HandlerError::Permanent(Box::new(error)))?;
    let at = event.metadata().occurred_at;
    let movement = |wallet_id, direction, amount| Movement {
        wallet_id,
        direction,
        amount,
        at,
    };
    // Not subscribed: the transfer or capture it completes names both wallets, and is
    // counted for both from there.
    if let DomainEvent::FundsReceived(_) = &event {
        return Err(HandlerError::Permanent(
            "FundsReceived is counted from the FundsTransferred or HoldCaptured it completes"
                .into(),
        ));
    }
    let moves = domain::money_moved(&event);
    if moves.is_empty() {
        return Err(HandlerError::Permanent(
            format!("{} is not a money movement", event.event_type()).into(),
        ));
    }
    Ok(moves
        .into_iter()
        .map(|(wallet_id, flow, amount)| movement(wallet_id, flow.into(), amount))
        .collect())
}

impl EventHandler for WalletActivityProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let outcomes = self.handle_batch(std::slice::from_ref(received)).await?;
        Ok(outcomes[0])
    }

    /// One transaction, two statements: the inbox rows, then the new events' movements
    /// added to their wallets' totals. An event it cannot read fails the whole batch (the
    /// runtime then applies the events one by one).
    async fn handle_batch(&self, batch: &[ReceivedEvent]) -> Result<Vec<Outcome>, HandlerError> {
        let movements = batch.iter().map(movements).collect::<Result<Vec<_>, _>>()?;
        let keys = crate::inbox::keys(batch);
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let new = store::inbox::record_all(&mut tx, Self::NAME, &keys)
            .await
            .map_err(classify)?;
        let fresh: Vec<Movement> = movements
            .into_iter()
            .zip(&new)
            .filter(|(_, new)| **new)
            .flat_map(|(movements, _)| movements)
            .collect();
        activity::apply_all(&mut tx, &fresh)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(crate::inbox::outcomes(batch, &new))
    }
}
