//! Notifications sent to users, stored in PostgreSQL (see `store::notifications`).

use domain::WalletCreated;
use sqlx::PgConnection;
use store::StoreError;
use store::notifications::{self, NewNotification};

pub const WELCOME: &str = "welcome";

/// Sends notifications. Today "sending" is recording them for the user to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationService;

impl NotificationService {
    /// Records the welcome notification for a new wallet, at most once per wallet.
    /// Returns false if the wallet already had one.
    pub async fn send_welcome(
        &self,
        conn: &mut PgConnection,
        event: &WalletCreated,
    ) -> Result<bool, StoreError> {
        let message = format!(
            "Welcome! Your {} wallet \"{}\" is ready.",
            event.currency, event.name
        );
        notifications::insert_once_per_wallet(
            conn,
            NewNotification {
                user_id: event.user_id,
                wallet_id: event.wallet_id,
                kind: WELCOME,
                message: &message,
                event_id: event.metadata.event_id,
            },
        )
        .await
    }
}
