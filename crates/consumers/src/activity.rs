//! `WalletActivityProjection`: the activity read model. Each money event adds to the
//! wallet's running totals, once (the inbox row commits with the update), so redelivery
//! and replay leave the totals unchanged.

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use domain::{DomainEvent, Money};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::errors::classify;
use crate::inbox;

#[derive(Debug, Clone)]
pub struct WalletActivityProjection {
    pool: PgPool,
}

impl WalletActivityProjection {
    pub const NAME: &'static str = "wallet-activity";

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// One wallet's activity, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Activity {
    pub wallet_id: Uuid,
    pub currency: String,
    pub total_in_minor: i64,
    pub total_out_minor: i64,
    pub events_applied: i64,
    pub last_activity_at: DateTime<Utc>,
}

impl EventHandler for WalletActivityProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let event = event_bindings::decode(&received.event)
            .map_err(|error| HandlerError::Permanent(Box::new(error)))?;
        let at = event.metadata().occurred_at;
        let changes: Vec<(Uuid, Money, i64, i64)> = match &event {
            DomainEvent::FundsAdded(e) => vec![(e.wallet_id, e.amount, e.amount.minor_units(), 0)],
            DomainEvent::FundsWithdrawn(e) => {
                vec![(e.wallet_id, e.amount, 0, e.amount.minor_units())]
            }
            DomainEvent::FundsTransferred(e) => vec![
                (e.from_wallet_id, e.amount, 0, e.amount.minor_units()),
                (e.to_wallet_id, e.amount, e.amount.minor_units(), 0),
            ],
            other => {
                return Err(HandlerError::Permanent(
                    format!("{} is not a money movement", other.event_type()).into(),
                ));
            }
        };
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let source = received.event.source().as_str();
        if !inbox::record(&mut tx, Self::NAME, source, received.event.id())
            .await
            .map_err(classify)?
        {
            return Ok(Outcome::Duplicate);
        }
        for (wallet, amount, into, out) in changes {
            apply(&mut tx, wallet, amount, into, out, at)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Outcome::Applied)
    }
}

async fn apply(
    conn: &mut PgConnection,
    wallet: Uuid,
    amount: Money,
    into: i64,
    out: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallet_activity (wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at) \
         VALUES ($1, $2, $3, $4, 1, $5) \
         ON CONFLICT (wallet_id) DO UPDATE SET \
             total_in_minor = wallet_activity.total_in_minor + EXCLUDED.total_in_minor, \
             total_out_minor = wallet_activity.total_out_minor + EXCLUDED.total_out_minor, \
             events_applied = wallet_activity.events_applied + 1, \
             last_activity_at = greatest(wallet_activity.last_activity_at, EXCLUDED.last_activity_at)",
    )
    .bind(wallet)
    .bind(amount.currency().code())
    .bind(into)
    .bind(out)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The activity of one wallet, if any event has reached it.
pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    wallet_id: Uuid,
) -> Result<Option<Activity>, sqlx::Error> {
    sqlx::query_as(
        "SELECT wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at \
         FROM wallet_activity WHERE wallet_id = $1",
    )
    .bind(wallet_id)
    .fetch_optional(db)
    .await
}
