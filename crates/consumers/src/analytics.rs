//! The analytics job's results, read back like any other topic: [`VolumeProjection`] keeps
//! the volume per currency and minute, [`VelocityAlerts`] records each velocity alert and
//! tells the wallet's owner. Both apply an event once (the inbox, in the effect's
//! transaction).

use domain::{DomainEvent, EventType, VelocityExceeded, VolumeComputed};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;
use store::analytics::{NewRiskAlert, Total, VolumeMinute};
use store::notifications::NewNotification;

use crate::errors::classify;

/// The notification kind (and alert kind) of a velocity alert.
pub const VELOCITY_EXCEEDED: &str = "velocity-exceeded";

fn permanent(error: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Permanent(Box::new(error))
}

fn decode(received: &ReceivedEvent) -> Result<DomainEvent, HandlerError> {
    event_bindings::decode(&received.event).map_err(permanent)
}

/// The stored form of a volume event; refused when an amount is not exact in its
/// currency (a digit the currency cannot hold) or a count does not fit.
fn volume_minute(event: &VolumeComputed) -> Result<VolumeMinute, HandlerError> {
    let total = |t: &domain::VolumeTotal| -> Result<Total, HandlerError> {
        Ok(Total {
            count: i64::try_from(t.count).map_err(permanent)?,
            amount: t.money(event.currency).map_err(permanent)?,
        })
    };
    Ok(VolumeMinute {
        currency: event.currency,
        minute: event.minute,
        deposits: total(&event.deposits)?,
        withdrawals: total(&event.withdrawals)?,
        transfers: total(&event.transfers)?,
        event_id: event.metadata.event_id,
    })
}

/// Feeds `analytics_volume` from `analytics-volume-events`.
#[derive(Debug, Clone)]
pub struct VolumeProjection {
    pool: PgPool,
}

impl VolumeProjection {
    pub const NAME: &'static str = "analytics-volume";
    pub const EVENT_TYPES: &'static [EventType] = &[EventType::VolumeComputed];

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl EventHandler for VolumeProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let minute = match decode(received)? {
            DomainEvent::VolumeComputed(event) => volume_minute(&event)?,
            other => {
                return Err(HandlerError::Permanent(
                    format!("expected VolumeComputed, got {}", other.event_type()).into(),
                ));
            }
        };
        let keys = crate::inbox::keys(std::slice::from_ref(received));
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let new = store::inbox::record_all(&mut tx, Self::NAME, &keys)
            .await
            .map_err(classify)?;
        if new[0] {
            store::analytics::upsert_volume(&mut tx, &minute)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(crate::inbox::outcomes(std::slice::from_ref(received), &new)[0])
    }
}

/// Records `wallet-velocity-events` as risk alerts and notifies each wallet's owner.
#[derive(Debug, Clone)]
pub struct VelocityAlerts {
    pool: PgPool,
}

impl VelocityAlerts {
    pub const NAME: &'static str = "velocity-alerts";
    pub const EVENT_TYPES: &'static [EventType] = &[EventType::WalletVelocityExceeded];

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn message(event: &VelocityExceeded, amount: domain::Money) -> String {
    format!(
        "Unusual activity: {} outgoing movements totalling {} {} left your wallet between {} \
         and {}. If this was not you, freeze the wallet and contact support.",
        event.count,
        amount.to_decimal_string(),
        amount.currency().code(),
        event.window_start.format("%H:%M"),
        event.window_end.format("%H:%M UTC"),
    )
}

impl EventHandler for VelocityAlerts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let event = match decode(received)? {
            DomainEvent::WalletVelocityExceeded(event) => event,
            other => {
                return Err(HandlerError::Permanent(
                    format!(
                        "expected WalletVelocityExceeded, got {}",
                        other.event_type()
                    )
                    .into(),
                ));
            }
        };
        let amount = event.amount().map_err(permanent)?;
        let movements = i64::try_from(event.count).map_err(permanent)?;
        let keys = crate::inbox::keys(std::slice::from_ref(received));
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let new = store::inbox::record_all(&mut tx, Self::NAME, &keys)
            .await
            .map_err(classify)?;
        if new[0] {
            let Some(wallet) = store::wallets::find(&mut tx, event.wallet_id)
                .await
                .map_err(classify)?
            else {
                return Err(HandlerError::Permanent(
                    format!("velocity alert for unknown wallet {}", event.wallet_id).into(),
                ));
            };
            let alert = NewRiskAlert {
                wallet_id: event.wallet_id,
                user_id: wallet.user_id(),
                kind: VELOCITY_EXCEEDED,
                window_start: event.window_start,
                window_end: event.window_end,
                movements,
                amount,
                event_id: event.metadata.event_id,
            };
            if store::analytics::insert_alert(&mut tx, &alert)
                .await
                .map_err(classify)?
            {
                let text = message(&event, amount);
                let notification = NewNotification {
                    user_id: wallet.user_id(),
                    wallet_id: event.wallet_id,
                    kind: VELOCITY_EXCEEDED,
                    message: &text,
                    event_id: event.metadata.event_id,
                };
                store::notifications::insert(&mut tx, &notification)
                    .await
                    .map_err(classify)?;
            }
            tracing::info!(wallet_id = %event.wallet_id, "velocity alert recorded");
        }
        tx.commit().await.map_err(classify)?;
        Ok(crate::inbox::outcomes(std::slice::from_ref(received), &new)[0])
    }
}
