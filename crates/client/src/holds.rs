//! Holds (the server's docs/holds.md): reserve money now, capture or void it later.

use chrono::{DateTime, Utc};
use domain::{HoldId, WalletId};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::reply::Reply;
use crate::types::{Page, PageRequest};

/// `POST /v1/wallets/{id}/holds`: give `expires_in_seconds` or `expires_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceHold {
    pub amount: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Where a capture sends the money; absent: out of the wallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet_id: Option<WalletId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl PlaceHold {
    /// `amount` for `seconds`, out of the wallet when captured.
    pub fn new(amount: impl Into<String>, seconds: u32) -> Self {
        Self {
            amount: amount.into(),
            expires_in_seconds: Some(seconds),
            ..Self::default()
        }
    }
}

/// `POST /v1/holds/{id}/capture`: `amount` absent captures all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

/// A hold as it stood when the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub wallet_id: WalletId,
    pub to_wallet_id: Option<WalletId>,
    pub amount: String,
    /// What a capture moved; `"0.00"` otherwise.
    pub captured: String,
    /// `pending`, `captured`, `voided` or `expired`.
    pub status: String,
    pub description: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Which holds a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatusFilter {
    Pending,
    Captured,
    Voided,
    Expired,
}

impl HoldStatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            HoldStatusFilter::Pending => "pending",
            HoldStatusFilter::Captured => "captured",
            HoldStatusFilter::Voided => "voided",
            HoldStatusFilter::Expired => "expired",
        }
    }
}

impl Client {
    /// `POST /v1/wallets/{id}/holds` (by the wallet's owner); `Location` names the hold.
    pub async fn place_hold(
        &self,
        wallet: WalletId,
        hold: &PlaceHold,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Hold>, Error> {
        let path = format!("v1/wallets/{wallet}/holds");
        self.post("place hold", &path, Some(hold), key).await
    }

    /// `POST /v1/holds/{id}/capture` (the owner, or the `wallets:capture` scope).
    pub async fn capture_hold(
        &self,
        hold: HoldId,
        capture: &Capture,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Hold>, Error> {
        let path = format!("v1/holds/{hold}/capture");
        self.post("capture hold", &path, Some(capture), key).await
    }

    /// `POST /v1/holds/{id}/void` (the owner, or the `wallets:capture` scope).
    pub async fn void_hold(
        &self,
        hold: HoldId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Reply<Hold>, Error> {
        let path = format!("v1/holds/{hold}/void");
        self.post::<(), _>("void hold", &path, None, key).await
    }

    /// `GET /v1/holds/{id}`; its `ETag` is the hold's version.
    pub async fn get_hold(&self, hold: HoldId) -> Result<Reply<Hold>, Error> {
        let path = format!("v1/holds/{hold}");
        let request = self.request("get hold", Method::GET, &path, &[])?;
        self.send("get hold", request).await
    }

    /// `GET /v1/wallets/{id}/holds`: one page of the wallet's holds, newest first, with
    /// `status` only if given.
    pub async fn list_holds(
        &self,
        wallet: WalletId,
        status: Option<HoldStatusFilter>,
        page: &PageRequest,
    ) -> Result<Reply<Page<Hold>>, Error> {
        let path = format!("v1/wallets/{wallet}/holds");
        let mut query = page.query();
        if let Some(status) = status {
            query.push(("status", status.as_str().to_owned()));
        }
        let request = self.request("list holds", Method::GET, &path, &query)?;
        self.send("list holds", request).await
    }
}

/// `GET /v1/wallets/{id}/balance?at=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAt {
    pub wallet_id: WalletId,
    pub at: DateTime<Utc>,
    pub balance: String,
    pub held: String,
    pub available: String,
}

/// A wallet's two ledger accounts at a statement's start or end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementAccounts {
    pub balance: String,
    pub held: String,
}

/// One ledger transaction of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementItem {
    pub id: domain::TransactionId,
    pub kind: String,
    pub hold_id: Option<HoldId>,
    /// Signed change of the balance.
    pub amount: String,
    /// Signed change of the held account.
    pub held: String,
    pub balance_after: String,
    pub held_after: String,
    pub created_at: DateTime<Utc>,
}

/// A page of `GET /v1/wallets/{id}/statement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub wallet_id: WalletId,
    pub currency: domain::Currency,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub opening: StatementAccounts,
    pub items: Vec<StatementItem>,
    pub closing: StatementAccounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Client {
    /// `GET /v1/wallets/{id}/balance?at=`: the balance and held amount at `at`.
    pub async fn balance_at(
        &self,
        wallet: WalletId,
        at: DateTime<Utc>,
    ) -> Result<Reply<BalanceAt>, Error> {
        let path = format!("v1/wallets/{wallet}/balance");
        let query = [("at", at.to_rfc3339())];
        let request = self.request("balance at", Method::GET, &path, &query)?;
        self.send("balance at", request).await
    }

    /// `GET /v1/wallets/{id}/statement`: one page of the statement of `[from, to)`.
    pub async fn statement(
        &self,
        wallet: WalletId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Reply<Statement>, Error> {
        let path = format!("v1/wallets/{wallet}/statement");
        let mut query = vec![("from", from.to_rfc3339()), ("to", to.to_rfc3339())];
        query.extend(page.query());
        let request = self.request("statement", Method::GET, &path, &query)?;
        self.send("statement", request).await
    }
}
