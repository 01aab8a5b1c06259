//! The request and answer bodies, as they are on the wire.
//!
//! Amounts and balances stay decimal strings (`"10.50"`), exactly as the server writes them
//! with the currency's scale: a client never turns money into a float. Ids, the currency and
//! the wallet status are the `domain` crate's typed values, which serialize as the bare
//! UUID, the ISO 4217 code and the lower-case status.

use chrono::{DateTime, Utc};
use domain::{Currency, EventId, TransactionId, UserId, WalletId, WalletStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /v1/users`: registers the caller (the principal of the bearer token) as a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/wallets`: a wallet of the caller's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWallet {
    pub name: String,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub id: WalletId,
    pub user_id: UserId,
    pub name: String,
    pub currency: Currency,
    /// Posted money: decimal string with exactly the currency's scale.
    pub balance: String,
    /// What pending holds reserve now.
    pub held: String,
    /// `balance - held`: what withdrawals, transfers and new holds may use.
    pub available: String,
    pub status: WalletStatus,
    /// Grows with every change of the wallet.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

/// The body of a deposit or a withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Decimal string with at most the currency's decimal places, e.g. `"10.50"`.
    pub amount: String,
}

impl Amount {
    pub fn new(amount: impl Into<String>) -> Self {
        Self {
            amount: amount.into(),
        }
    }
}

/// A deposit or a withdrawal that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// The ledger transaction.
    pub id: TransactionId,
    pub wallet_id: WalletId,
    pub amount: String,
    pub balance_after: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/transfers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTransfer {
    pub from_wallet_id: WalletId,
    pub to_wallet_id: WalletId,
    /// Decimal string in the wallets' currency.
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransactionId,
    pub from_wallet_id: WalletId,
    pub to_wallet_id: WalletId,
    pub amount: String,
    pub from_balance_after: String,
    pub to_balance_after: String,
    pub created_at: DateTime<Utc>,
}

/// One page of a list: `items`, and the cursor of the next page, absent on the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Which page of a list to read: at most `limit` items (the server caps it), after
/// `cursor` (a [`Page::next_cursor`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page, of at most `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit: Some(limit),
            cursor: None,
        }
    }

    /// The page after `page`, of the same size; `None` after the last page.
    pub fn next<T>(&self, page: &Page<T>) -> Option<Self> {
        page.next_cursor.as_ref().map(|cursor| Self {
            limit: self.limit,
            cursor: Some(cursor.clone()),
        })
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        query
    }
}

/// One ledger entry of a wallet's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The deposit, withdrawal or transfer.
    pub id: TransactionId,
    /// `deposit`, `withdrawal` or `transfer`.
    pub kind: String,
    /// Signed: positive credits the wallet, negative debits it.
    pub amount: String,
    pub balance_after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty_wallet_id: Option<WalletId>,
    /// Who moved the money; absent on transactions from before authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    pub created_at: DateTime<Utc>,
}

/// An authenticated principal: the issuer of its token and the subject it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub issuer: String,
    pub subject: String,
}

/// The activity read model of a wallet: eventually consistent, fed by the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub wallet_id: WalletId,
    pub currency: Currency,
    pub total_in: String,
    pub total_out: String,
    pub events_applied: i64,
    /// Absent until the first movement has been projected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: UserId,
    pub wallet_id: WalletId,
    pub kind: String,
    pub message: String,
    /// The event that caused it.
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}

/// Which volume to read (`GET /v1/analytics/volume`): one currency's minutes from `from`
/// (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRange {
    pub currency: Currency,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl VolumeRange {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("currency", self.currency.to_string()),
            ("from", self.from.to_rfc3339()),
            ("to", self.to.to_rfc3339()),
        ]
    }
}

/// How many movements of one kind in a minute, and their exact sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeTotal {
    pub count: i64,
    /// Decimal string with exactly the currency's scale.
    pub amount: String,
}

/// The volume of one currency in one minute of event time, as the analytics job computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMinute {
    /// The minute's first instant.
    pub minute: DateTime<Utc>,
    pub currency: Currency,
    pub deposits: VolumeTotal,
    pub withdrawals: VolumeTotal,
    pub transfers: VolumeTotal,
}

/// A velocity alert: a wallet's outgoing movements crossed a limit within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAlert {
    pub id: Uuid,
    pub wallet_id: WalletId,
    /// The wallet's owner (who was notified).
    pub user_id: UserId,
    /// `velocity-exceeded`.
    pub kind: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Outgoing movements in the window.
    pub movements: i64,
    /// Their sum: decimal string with exactly the currency's scale.
    pub amount: String,
    pub currency: Currency,
    /// The analytics event that raised it.
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}
