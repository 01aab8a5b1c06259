//! The handlers' side of the inbox: which events of a batch it is asked about, and what
//! its answer means for each.

use cloudevents::AttributesReader;
use kafka::{Outcome, ReceivedEvent};
use store::inbox::InboxKey;

/// The inbox keys of `batch`, in order.
pub(crate) fn keys(batch: &[ReceivedEvent]) -> Vec<InboxKey<'_>> {
    batch
        .iter()
        .map(|received| InboxKey {
            source: received.event.source().as_str(),
            id: received.event.id(),
        })
        .collect()
}

/// `Applied` for the events the inbox took as new, `Duplicate` (logged) for the others.
pub(crate) fn outcomes(batch: &[ReceivedEvent], new: &[bool]) -> Vec<Outcome> {
    batch
        .iter()
        .zip(new)
        .map(|(received, &new)| {
            if new {
                Outcome::Applied
            } else {
                tracing::info!(event_id = received.event.id(), "duplicate event skipped");
                Outcome::Duplicate
            }
        })
        .collect()
}
