//! Filling a gap in a wallet's stream from the API: `GET /v1/wallets/{id}/events` after
//! the last sequence before the gap, page by page, up to the gap's end. Each fetched event
//! is the CloudEvent Kafka would have carried (same `id`, `type` and `data`), so it is
//! decoded and printed like one, and remembered: when Kafka delivers it after all (it was
//! late on another topic, say), it is a duplicate.

use std::ops::RangeInclusive;

use cloudevents::{Event, EventBuilder, EventBuilderV10};
use domain::{DomainEvent, WalletId};
use wallet_hub_client::{Client, WalletEvent};

use crate::Seen;

/// The most events one page may hold (the API's largest `limit`).
const PAGE: i64 = 200;

/// Fetches and prints the events of `missing` of `wallet`, oldest first. A failure is
/// reported and the gap stays open (a real consumer would retry before it goes on).
pub async fn fill(api: &Client, wallet: WalletId, missing: RangeInclusive<i64>, seen: &mut Seen) {
    let (first, last) = (*missing.start(), *missing.end());
    let mut after = first - 1;
    while after < last {
        let limit = u32::try_from((last - after).min(PAGE)).unwrap_or(1);
        let page = match api.wallet_events(wallet, after, Some(limit)).await {
            Ok(reply) => reply.body,
            Err(error) => {
                eprintln!("  cannot fill {first}..={last} of wallet {wallet}: {error}");
                return;
            }
        };
        let Some(end) = page.items.last().map(|e| e.sequence) else {
            eprintln!("  the API has no events of wallet {wallet} after {after}");
            return;
        };
        for item in page.items.iter().filter(|e| e.sequence <= last) {
            seen.sequences.observe(wallet, item.sequence);
            seen.ids.insert(item.id.to_string());
            match decode(item) {
                Ok(typed) => println!("  filled from the API: {}", crate::describe(&typed)),
                Err(error) => eprintln!("  event {} of the API: {error}", item.id),
            }
        }
        after = end;
    }
}

/// The typed event an event of the API is: decoded from the CloudEvent it was published
/// as (the attributes a decoder needs), like an event read from Kafka.
fn decode(item: &WalletEvent) -> anyhow::Result<DomainEvent> {
    let event: Event = EventBuilderV10::new()
        .id(item.id.to_string())
        .source(event_bindings::SOURCE)
        .ty(item.event_type.as_str())
        .time(item.occurred_at)
        .data("application/json", item.data.clone())
        .build()?;
    Ok(event_bindings::decode(&event)?)
}
