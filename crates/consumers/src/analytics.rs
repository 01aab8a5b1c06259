//! The analytics job's results, read back like any other topic: [`VolumeProjection`] keeps
//! the volume per currency and minute, [`VelocityAlerts`] records each velocity alert and
//! tells the wallet's owner. Both apply an event once (the inbox, in the effect's
//! transaction: [`crate::inbox::apply_once`]); the newest minute per currency is also a
//! gauge for the dashboard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use domain::{Currency, DomainEvent, EventType, VelocityExceeded, VolumeComputed};
use kafka::{EventHandler, HandlerError, Outcome, ReceivedEvent};
use sqlx::PgPool;
use store::analytics::{NewRiskAlert, Total, VolumeMinute};
use store::notifications::NewNotification;
use telemetry::metrics::{ANALYTICS_VOLUME_MINUTE_AMOUNT, ANALYTICS_VOLUME_MINUTE_MOVEMENTS};

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
    newest: NewestMinutes,
}

impl VolumeProjection {
    pub const NAME: &'static str = "analytics-volume";
    pub const EVENT_TYPES: &'static [EventType] = &[EventType::VolumeComputed];

    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            newest: NewestMinutes::default(),
        }
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
        let outcome = crate::inbox::apply_once(&self.pool, Self::NAME, received, async |tx| {
            store::analytics::upsert_volume(tx, &minute)
                .await
                .map_err(classify)
        })
        .await?;
        if matches!(outcome, Outcome::Applied) {
            self.newest.show(&minute);
        }
        Ok(outcome)
    }
}

/// The newest minute seen per currency, shown as the `analytics_volume_minute_*` gauges: a
/// late correction of an older minute is stored but does not move the dashboard back.
#[derive(Debug, Clone, Default)]
struct NewestMinutes(Arc<Mutex<HashMap<Currency, DateTime<Utc>>>>);

impl NewestMinutes {
    fn show(&self, volume: &VolumeMinute) {
        let mut newest = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = newest.entry(volume.currency).or_insert(volume.minute);
        if *seen > volume.minute {
            return;
        }
        *seen = volume.minute;
        let currency = volume.currency.code();
        for (kind, total) in [
            ("deposit", &volume.deposits),
            ("withdrawal", &volume.withdrawals),
            ("transfer", &volume.transfers),
        ] {
            let labels = [("currency", currency), ("kind", kind)];
            // Dashboards only (a float read from the exact decimal, no arithmetic on it):
            // the exact figures are the API's.
            if let Ok(major) = total.amount.to_decimal_string().parse::<f64>() {
                metrics::gauge!(ANALYTICS_VOLUME_MINUTE_AMOUNT, &labels).set(major);
            }
            #[expect(clippy::cast_precision_loss, reason = "a gauge for dashboards")]
            metrics::gauge!(ANALYTICS_VOLUME_MINUTE_MOVEMENTS, &labels).set(total.count as f64);
        }
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
        crate::inbox::apply_once(&self.pool, Self::NAME, received, async |tx| {
            let Some(wallet) = store::wallets::find(&mut *tx, event.wallet_id)
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
            if store::analytics::insert_alert(&mut *tx, &alert)
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
                store::notifications::insert(&mut *tx, &notification)
                    .await
                    .map_err(classify)?;
            }
            tracing::info!(wallet_id = %event.wallet_id, "velocity alert recorded");
            Ok(())
        })
        .await
    }
}
