//! A wallet's event stream (`GET /v1/wallets/{id}/events`): what a consumer reads to fill
//! a gap in the sequences it received from Kafka.

use chrono::{DateTime, Utc};
use domain::{EventId, WalletId};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::Error;
use crate::reply::Reply;

/// One event of a wallet's stream, as the CloudEvent that published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletEvent {
    /// Its place in the wallet's stream (the CloudEvent `sequence`), from 1 with no gap.
    pub sequence: i64,
    /// The CloudEvent `id`.
    pub id: EventId,
    /// The CloudEvent `type`, e.g. `io.wallethub.funds.added.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The CloudEvent `data`.
    pub data: serde_json::Value,
    /// Derived from the history of a wallet older than event streams; never published.
    pub migrated: bool,
}

/// A page of a wallet's events, in sequence order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletEventPage {
    pub items: Vec<WalletEvent>,
    /// The `after_sequence` of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_sequence: Option<i64>,
}

impl Client {
    /// `GET /v1/wallets/{id}/events`: one page of the wallet's events after sequence
    /// `after_sequence` (0: from its first), of at most `limit` (the server's default if
    /// `None`).
    pub async fn wallet_events(
        &self,
        wallet: WalletId,
        after_sequence: i64,
        limit: Option<u32>,
    ) -> Result<Reply<WalletEventPage>, Error> {
        let path = format!("v1/wallets/{wallet}/events");
        let mut query = vec![("after_sequence", after_sequence.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let request = self.request("wallet events", Method::GET, &path, &query)?;
        self.send("wallet events", request).await
    }

    /// Every event of the wallet after `after_sequence`, oldest first, read in pages of
    /// `page_size`.
    pub async fn wallet_events_after(
        &self,
        wallet: WalletId,
        after_sequence: i64,
        page_size: u32,
    ) -> Result<Vec<WalletEvent>, Error> {
        let mut events = Vec::new();
        let mut next = Some(after_sequence);
        while let Some(after) = next {
            let page = self
                .wallet_events(wallet, after, Some(page_size))
                .await?
                .body;
            next = page.next_after_sequence;
            events.extend(page.items);
        }
        Ok(events)
    }
}
