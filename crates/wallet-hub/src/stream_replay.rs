//! `wallet-hub outbox replay --from-stream`: publishes events again from the wallets'
//! streams (`wallet_events`) instead of the outbox, which deletes published rows after
//! `relay.retention_hours`; the stream keeps every event. The events go through the outbox
//! replay's own publish step ([`outbox::ops::publish`]) with their original ids and
//! sequences, keyed by wallet id; the stream keeps no trace context, so none is sent.

use chrono::{DateTime, Utc};
use domain::{EventType, WalletId};
use event_bindings::{EventBindings, OutgoingEvent};
use kafka::EventProducer;
use outbox::ops::{Origin, ReplayError, Republish};
use sqlx::PgPool;
use store::StoreError;
use store::streams::{self, StoredEvent};

/// Which events of the streams to publish again. Every given bound applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSelection {
    /// One wallet's stream.
    pub wallet: Option<WalletId>,
    /// Events that occurred at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Events that occurred before this.
    pub until: Option<DateTime<Utc>>,
    /// Also events the migration derived from history before streams: consumers never
    /// received those ids, so they would apply them as new events.
    pub include_migrated: bool,
}

impl StreamSelection {
    /// Whether it names what to replay (a wallet or a time bound): all streams at once
    /// is never a default.
    pub fn is_bounded(&self) -> bool {
        self.wallet.is_some() || self.since.is_some() || self.until.is_some()
    }

    fn takes(&self, event: &StoredEvent) -> bool {
        (self.include_migrated || !event.migrated)
            && self.since.is_none_or(|since| event.occurred_at >= since)
            && self.until.is_none_or(|until| event.occurred_at < until)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamReplayError {
    #[error("cannot read the streams")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] ReplayError),
}

/// Publishes the selected events in pages, in stream order (one wallet: by sequence;
/// otherwise by occurrence time, wallet and sequence); `progress` is told how many were
/// published after each page.
pub async fn replay(
    pool: &PgPool,
    producer: &EventProducer,
    bindings: &EventBindings,
    selection: &StreamSelection,
    page_size: i64,
    mut progress: impl FnMut(u64),
) -> Result<u64, StreamReplayError> {
    let mut published = 0;
    let mut after: Option<(DateTime<Utc>, uuid::Uuid, i64)> = None;
    loop {
        let page = next_page(pool, selection, after, page_size).await?;
        let Some(last) = page.last() else {
            return Ok(published);
        };
        after = Some((last.occurred_at, last.wallet_id, last.sequence));
        let chosen: Vec<&StoredEvent> = page.iter().filter(|e| selection.takes(e)).collect();
        let payloads: Vec<String> = chosen.iter().map(|e| e.payload.to_string()).collect();
        let events = chosen
            .iter()
            .zip(&payloads)
            .map(|(event, payload)| republish(event, payload))
            .collect::<Result<Vec<_>, _>>()?;
        published += outbox::ops::publish(producer, bindings, &events).await?;
        progress(published);
    }
}

/// The next page of candidates after `after` (the last event of the previous page).
async fn next_page(
    pool: &PgPool,
    selection: &StreamSelection,
    after: Option<(DateTime<Utc>, uuid::Uuid, i64)>,
    page_size: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    match selection.wallet {
        Some(wallet) => {
            let after_sequence = after.map_or(0, |(_, _, sequence)| sequence);
            streams::read(pool, wallet, after_sequence, page_size).await
        }
        None => {
            let since = selection.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let until = selection.until.unwrap_or(far_future());
            streams::read_between(pool, since, until, after, page_size).await
        }
    }
}

/// An instant after every event, within PostgreSQL's range (an open `--until`).
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The stored event as the relay would have sent it: its id, type, wallet, time and
/// sequence; no trace context.
fn republish<'a>(event: &StoredEvent, payload: &'a str) -> Result<Republish<'a>, ReplayError> {
    let origin = Origin::Stream(event.event_id);
    let event_type: EventType = event.event_type.parse().map_err(|_| ReplayError::Row {
        origin,
        reason: format!("unknown event type {}", event.event_type),
    })?;
    Ok(Republish {
        origin,
        event: OutgoingEvent {
            event_id: event.event_id,
            event_type,
            aggregate_id: event.wallet_id,
            occurred_at: event.occurred_at,
            payload,
            traceparent: None,
            tracestate: None,
            sequence: Some(event.sequence),
        },
        trace: telemetry::TraceHeaders::default(),
    })
}
