//! A wallet's ledger over time: its balance and held amount at any instant
//! (`GET /v1/wallets/{id}/balance?at=`), and its statement over a period
//! (`GET /v1/wallets/{id}/statement?from=&to=`: the opening line, the ledger transactions
//! with what each changed, the closing line; paged; `Accept: text/csv` for the same as
//! CSV). Readable by the wallet's owner or an admin, like the rest of the wallet.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{Currency, HoldId, Money, TransactionId, WalletId};
use serde::{Deserialize, Serialize};
use store::ledger;

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidPath, ValidQuery};
use crate::openapi::problems;
use crate::pagination::PageQuery;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    /// The instant (RFC 3339), not in the future.
    pub at: DateTime<Utc>,
}

/// A wallet's balance and held amount at an instant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BalanceAtResponse {
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    pub at: DateTime<Utc>,
    /// Posted money at `at`, from the ledger.
    pub balance: String,
    /// What holds reserved at `at`: placed by then, neither closed nor expired yet.
    pub held: String,
    pub available: String,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/balance",
    tag = "wallets",
    params(("id" = Uuid, Path), BalanceQuery),
    responses(
        (status = 200, body = BalanceAtResponse),
        problems::Malformed,
        problems::NotFound,
        problems::Invalid,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(crate) async fn balance_at(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
    ValidQuery(query): ValidQuery<BalanceQuery>,
) -> Result<Json<BalanceAtResponse>, ApiError> {
    if query.at > Utc::now() {
        return Err(ApiError::Validation("`at` is in the future".into()));
    }
    let mut conn = state.pool.acquire().await?;
    let wallet = super::find_readable(&mut conn, &caller, id).await?;
    let found = ledger::balance_at(&mut conn, id, query.at).await?;
    let money = |minor| Money::from_minor(minor, wallet.currency()).to_string();
    Ok(Json(BalanceAtResponse {
        wallet_id: id,
        at: query.at,
        balance: money(found.balance_minor),
        held: money(found.held_minor),
        available: money(found.balance_minor - found.held_minor),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The start (inclusive), RFC 3339.
    pub from: DateTime<Utc>,
    /// The end (exclusive), RFC 3339; at or before `from`: no movement.
    pub to: DateTime<Utc>,
    /// Movements per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    pub limit: Option<i64>,
    #[param(schema_with = crate::grammar::cursor_schema, nullable = false)]
    pub cursor: Option<String>,
}

/// Where a wallet's two ledger accounts stood: its balance, and what its `held` account
/// carried (holds recorded pending, docs/holds.md).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatementAccounts {
    pub balance: String,
    pub held: String,
}

/// One ledger transaction of the wallet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatementItem {
    /// The ledger transaction (a deposit, withdrawal, transfer, capture's id; a hold's own
    /// id for its placing).
    #[schema(value_type = uuid::Uuid)]
    pub id: TransactionId,
    #[schema(schema_with = super::reads::kind_schema)]
    pub kind: String,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub hold_id: Option<HoldId>,
    /// Signed change of the balance.
    pub amount: String,
    /// Signed change of the held account.
    pub held: String,
    pub balance_after: String,
    pub held_after: String,
    pub created_at: DateTime<Utc>,
}

/// A statement page: the period's opening and closing lines (the same on every page) and
/// a page of its movements; the opening plus every movement's changes is the closing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatementResponse {
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Before `from`.
    pub opening: StatementAccounts,
    pub items: Vec<StatementItem>,
    /// Before `to`.
    pub closing: StatementAccounts,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::grammar::cursor_schema)]
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/statement",
    tag = "wallets",
    params(("id" = Uuid, Path), StatementQuery),
    responses(
        (status = 200, description = "The statement page; with `Accept: text/csv`, the same as CSV (a header row, then `opening`, `movement` and `closing` lines)",
            content(
                (StatementResponse = "application/json"),
                (String = "text/csv"),
            ),
            headers(("Link" = String, description = "With text/csv: the next page, `<...>; rel=\"next\"`"))),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(crate) async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ValidPath(id): ValidPath<WalletId>,
    ValidQuery(query): ValidQuery<StatementQuery>,
) -> Result<Response, ApiError> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .resolve()?;
    let mut conn = state.pool.acquire().await?;
    let wallet = super::find_readable(&mut conn, &caller, id).await?;
    let (from, to) = (query.from, query.to);
    let opening = ledger::accounts_before(&mut conn, id, from).await?;
    let closing = ledger::accounts_before(&mut conn, id, to.max(from)).await?;
    let after = page.after.map(TransactionId::from_uuid);
    let mut lines = ledger::statement(&mut conn, id, from, to, after, page.fetch()).await?;
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let next_cursor = (lines.len() > limit)
        .then(|| lines.get(limit - 1).map(|l| l.transaction_id.to_string()))
        .flatten();
    lines.truncate(limit);
    let currency = wallet.currency();
    let money = |minor| Money::from_minor(minor, currency).to_string();
    let accounts = |a: ledger::Accounts| StatementAccounts {
        balance: money(a.balance_minor),
        held: money(a.held_minor),
    };
    let statement = StatementResponse {
        wallet_id: id,
        currency,
        from,
        to,
        opening: accounts(opening),
        items: lines
            .into_iter()
            .map(|line| StatementItem {
                id: TransactionId::from_uuid(line.transaction_id),
                kind: line.kind,
                hold_id: line.hold_id.map(HoldId::from_uuid),
                amount: money(line.balance_change_minor),
                held: money(line.held_change_minor),
                balance_after: money(line.balance_after_minor),
                held_after: money(line.held_after_minor),
                created_at: line.created_at,
            })
            .collect(),
        closing: accounts(closing),
        next_cursor,
    };
    if wants_csv(&headers) {
        return Ok(csv(&statement, id, page.limit));
    }
    Ok(Json(statement).into_response())
}

/// Whether the client asked for CSV (`Accept: text/csv`) rather than JSON.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| media.split(';').next().map(str::trim) == Some("text/csv"))
}

/// The statement as CSV: a header row, the opening line, one row per movement, the closing
/// line; the next page (if any) in `Link`.
fn csv(statement: &StatementResponse, id: WalletId, limit: i64) -> Response {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut body =
        String::from("line,id,kind,hold_id,amount,held,balance_after,held_after,created_at\n");
    let mut row = |cells: [&str; 9]| {
        let _ = writeln!(body, "{}", cells.join(","));
    };
    let (opening, closing) = (&statement.opening, &statement.closing);
    let from = time(statement.from);
    row([
        "opening",
        "",
        "",
        "",
        "",
        "",
        &opening.balance,
        &opening.held,
        &from,
    ]);
    for item in &statement.items {
        let (id, hold) = (item.id.to_string(), item.hold_id.map(|h| h.to_string()));
        let at = time(item.created_at);
        row([
            "movement",
            &id,
            &item.kind,
            hold.as_deref().unwrap_or(""),
            &item.amount,
            &item.held,
            &item.balance_after,
            &item.held_after,
            &at,
        ]);
    }
    let to = time(statement.to);
    row([
        "closing",
        "",
        "",
        "",
        "",
        "",
        &closing.balance,
        &closing.held,
        &to,
    ]);
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    if let Some(cursor) = &statement.next_cursor {
        let link = format!(
            "</v1/wallets/{id}/statement?from={}&to={}&limit={limit}&cursor={cursor}>; rel=\"next\"",
            urlencode(&from),
            urlencode(&to)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

/// An RFC 3339 time as a query value (`+` and `:` escaped).
fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
