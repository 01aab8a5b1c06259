//! A wallet's history as its events (`GET /v1/wallets/{id}/events?after_sequence=&limit=`):
//! its stream, oldest first, each event as the CloudEvent that published it (type, id,
//! data) at its place in the stream. Readable by the wallet's owner or an admin, like the
//! rest of the wallet.
//!
//! Events are paged by sequence rather than by a cursor id: a consumer that sees a gap in
//! the `sequence` of the events it receives knows the last one it has, and asks for what
//! follows it (`after_sequence`), which is how it fills the gap
//! ([`event_bindings::SequenceTracker`]).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{EventId, EventType, WalletId};
use serde::{Deserialize, Serialize};
use store::streams::{self, StoredEvent};

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidPath, ValidQuery};
use crate::openapi::problems;
use crate::pagination;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The page starts after this sequence: 0 (the default) from the wallet's first event,
    /// the last sequence a consumer has to fill a gap, or the previous page's
    /// `next_after_sequence`.
    #[param(minimum = 0, nullable = false)]
    pub after_sequence: Option<i64>,
    /// Events per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    pub limit: Option<i64>,
}

impl EventsQuery {
    /// The sequence the page starts after, and its size; anything else is 400
    /// `malformed-request`, like every list's query.
    fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let after = self.after_sequence.unwrap_or(0);
        if after < 0 {
            return Err(ApiError::MalformedRequest(
                "after_sequence must be 0 or more".to_owned(),
            ));
        }
        Ok((after, pagination::limit(self.limit)?))
    }
}

/// One event of a wallet's stream, as the CloudEvent that published it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletEvent {
    /// Its place in the wallet's stream (the CloudEvent `sequence`): 1 opens the wallet,
    /// then 2, 3 ... with no gap; the wallet's `version` is its last.
    pub sequence: i64,
    /// The event id (the CloudEvent `id`).
    #[schema(value_type = uuid::Uuid)]
    pub id: EventId,
    /// The CloudEvent `type`.
    #[serde(rename = "type")]
    #[schema(schema_with = type_schema)]
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    /// The CloudEvent `data`, exactly as stored: valid against `/schemas/<type>.json`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Derived from the ledger and status history of a wallet that existed before event
    /// streams: never published, so no consumer received its id.
    pub migrated: bool,
}

/// A page of a wallet's events, in sequence order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletEventPage {
    pub items: Vec<WalletEvent>,
    /// Pass as `after_sequence` for the next page (the last item's sequence); absent on the
    /// last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_sequence: Option<i64>,
}

/// The CloudEvent types of the events of a wallet's stream.
fn type_schema() -> utoipa::openapi::Object {
    let types = EventType::ALL
        .into_iter()
        .filter(|t| domain::stream::is_wallet_event(*t))
        .map(event_bindings::cloud_event_type);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::new(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(types))
        .build()
}

impl WalletEvent {
    /// The event as its stream stores it; a type we do not know is a corrupt row (500).
    fn from_stored(row: StoredEvent) -> Result<Self, ApiError> {
        Ok(Self {
            sequence: row.sequence,
            id: EventId::from_uuid(row.event_id),
            event_type: event_bindings::cloud_event_type(row.domain_type()?),
            occurred_at: row.occurred_at,
            data: row.payload,
            migrated: row.migrated,
        })
    }
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/events",
    tag = "wallets",
    params(("id" = Uuid, Path), EventsQuery),
    responses(
        (status = 200, body = WalletEventPage),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
    ValidQuery(query): ValidQuery<EventsQuery>,
) -> Result<Json<WalletEventPage>, ApiError> {
    let (after, limit) = query.resolve()?;
    let mut conn = state.pool.acquire().await?;
    super::find_readable(&mut conn, &caller, id).await?;
    let mut rows = streams::read(&mut *conn, id, after, limit + 1).await?;
    let more = pagination::cut(&mut rows, limit);
    let items = rows
        .into_iter()
        .map(WalletEvent::from_stored)
        .collect::<Result<Vec<_>, _>>()?;
    let next_after_sequence = more.then(|| items.last().map(|e| e.sequence)).flatten();
    Ok(Json(WalletEventPage {
        items,
        next_after_sequence,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(after_sequence: Option<i64>, limit: Option<i64>) -> Option<(i64, i64)> {
        EventsQuery {
            after_sequence,
            limit,
        }
        .resolve()
        .ok()
    }

    #[test]
    fn a_page_starts_after_a_sequence_of_zero_or_more_and_its_limit_is_every_lists() {
        assert_eq!(resolve(None, None), Some((0, pagination::DEFAULT_LIMIT)));
        assert_eq!(resolve(Some(7), Some(1)), Some((7, 1)));
        assert_eq!(
            resolve(Some(i64::MAX), Some(pagination::MAX_LIMIT)),
            Some((i64::MAX, pagination::MAX_LIMIT))
        );
        for (after, limit) in [(Some(-1), None), (None, Some(0)), (None, Some(201))] {
            assert_eq!(resolve(after, limit), None, "{after:?} {limit:?}");
        }
    }

    #[test]
    fn every_type_the_schema_names_is_a_cloud_event_type_of_a_wallet_stream() {
        let schema = serde_json::to_value(type_schema()).expect("JSON");
        let named: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        assert!(named.contains(&"io.wallethub.funds.received.v1"));
        assert!(named.contains(&"io.wallethub.wallet.created.v1"));
        assert!(!named.contains(&"io.wallethub.user.created.v1"));
    }
}
