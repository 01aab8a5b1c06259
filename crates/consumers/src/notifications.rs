//! Notifications sent to users, stored in PostgreSQL (see `store::notifications`).

use domain::WalletCreated;
use sqlx::PgConnection;
use store::StoreError;
use store::notifications::{self, NewNotification};

pub const WELCOME: &str = "welcome";

/// Sends the welcome notification of each new wallet, at most once per wallet, in one
/// statement (the design's `NotificationService`: today "sending" is recording them for
/// the user to read). Returns, in order, whether each was sent (false: the wallet already
/// had one).
pub async fn send_welcomes(
    conn: &mut PgConnection,
    events: &[WalletCreated],
) -> Result<Vec<bool>, StoreError> {
    let messages: Vec<String> = events
        .iter()
        .map(|event| {
            format!(
                "Welcome! Your {} wallet \"{}\" is ready.",
                event.currency, event.name
            )
        })
        .collect();
    let notifications: Vec<NewNotification<'_>> = events
        .iter()
        .zip(&messages)
        .map(|(event, message)| NewNotification {
            user_id: event.user_id,
            wallet_id: event.wallet_id,
            kind: WELCOME,
            message,
            event_id: event.metadata.event_id,
        })
        .collect();
    notifications::insert_all_once_per_wallet(conn, &notifications).await
}
