//! What the analytics job (Apache Flink, docs/analytics.md) computed, as the consumers
//! stored it; both lists need the `wallets:admin` scope (checked before the query is read:
//! [`Admin`]) and are paginated
//! ([`crate::pagination`]):
//! - `GET /v1/analytics/volume?currency=&from=&to=`: volume per minute of one currency,
//!   oldest minute first;
//! - `GET /v1/risk/alerts`: velocity alerts, newest first.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{Currency, EventId, UserId, WalletId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Admin;
use crate::error::ApiError;
use crate::extract::ValidQuery;
use crate::openapi::problems;
use crate::pagination::{Page, PageQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_volume))
        .routes(routes!(list_risk_alerts))
}

/// The schema of a currency query parameter. Not `schema_with`: utoipa drops `required`
/// from parameters built that way, and the fuzzer then sends requests without it.
#[derive(Debug)]
pub struct CurrencyCode;

impl utoipa::PartialSchema for CurrencyCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::grammar::currency_schema().into()
    }
}

impl utoipa::ToSchema for CurrencyCode {}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VolumeQuery {
    #[param(value_type = CurrencyCode, inline)]
    pub currency: String,
    /// The first minute (inclusive), RFC 3339.
    pub from: DateTime<Utc>,
    /// The end (exclusive), RFC 3339; a range that ends at or before `from` holds no
    /// minute (an empty page).
    pub to: DateTime<Utc>,
    /// Items per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    pub limit: Option<i64>,
    #[param(schema_with = crate::grammar::cursor_schema, nullable = false)]
    pub cursor: Option<String>,
}

/// How many movements of one kind, and their exact sum.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VolumeTotalResponse {
    pub count: i64,
    /// Decimal string with exactly the currency's scale.
    #[schema(example = "10.50")]
    pub amount: String,
}

impl From<store::analytics::Total> for VolumeTotalResponse {
    fn from(total: store::analytics::Total) -> Self {
        Self {
            count: total.count,
            amount: total.amount.to_string(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = VolumeMinute)]
pub struct VolumeMinuteResponse {
    /// The minute's first instant (event time: when the movements were committed).
    pub minute: DateTime<Utc>,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    pub deposits: VolumeTotalResponse,
    pub withdrawals: VolumeTotalResponse,
    pub transfers: VolumeTotalResponse,
}

impl From<store::analytics::VolumeMinute> for VolumeMinuteResponse {
    fn from(volume: store::analytics::VolumeMinute) -> Self {
        Self {
            minute: volume.minute,
            currency: volume.currency,
            deposits: volume.deposits.into(),
            withdrawals: volume.withdrawals.into(),
            transfers: volume.transfers.into(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/analytics/volume",
    tag = "analytics",
    params(VolumeQuery),
    responses(
        (status = 200, body = Page<VolumeMinuteResponse>),
        problems::Malformed,
        problems::Forbidden,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all)]
async fn list_volume(
    State(state): State<AppState>,
    _admin: Admin,
    ValidQuery(query): ValidQuery<VolumeQuery>,
) -> Result<Json<Page<VolumeMinuteResponse>>, ApiError> {
    let currency: Currency = query
        .currency
        .parse()
        .map_err(|e: domain::MoneyError| ApiError::MalformedRequest(e.to_string()))?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .resolve()?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::analytics::list_volume(
        &mut conn,
        currency,
        query.from,
        query.to,
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        page,
        |row| row.event_id.as_uuid(),
        VolumeMinuteResponse::from,
    )))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RiskAlert)]
pub struct RiskAlertResponse {
    pub id: Uuid,
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    /// The wallet's owner (who was notified).
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    /// `velocity-exceeded`.
    pub kind: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Outgoing movements in the window.
    pub movements: i64,
    /// Their sum: decimal string with exactly the currency's scale.
    #[schema(example = "10.50")]
    pub amount: String,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    /// The analytics event that raised it.
    #[schema(value_type = uuid::Uuid)]
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}

impl From<store::analytics::RiskAlert> for RiskAlertResponse {
    fn from(alert: store::analytics::RiskAlert) -> Self {
        Self {
            id: alert.id,
            wallet_id: alert.wallet_id,
            user_id: alert.user_id,
            kind: alert.kind,
            window_start: alert.window_start,
            window_end: alert.window_end,
            movements: alert.movements,
            amount: alert.amount.to_string(),
            currency: alert.amount.currency(),
            event_id: alert.event_id,
            created_at: alert.created_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/risk/alerts",
    tag = "analytics",
    params(PageQuery),
    responses(
        (status = 200, body = Page<RiskAlertResponse>),
        problems::Malformed,
        problems::Forbidden,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all)]
async fn list_risk_alerts(
    State(state): State<AppState>,
    _admin: Admin,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<Page<RiskAlertResponse>>, ApiError> {
    let page = query.resolve()?;
    let mut conn = state.pool.acquire().await?;
    let alerts = store::analytics::list_alerts(&mut conn, page.after, page.fetch()).await?;
    Ok(Json(Page::from_rows(
        alerts,
        page,
        |alert| alert.id,
        RiskAlertResponse::from,
    )))
}
