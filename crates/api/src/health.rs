//! `/health/live` (the process answers) and `/health/ready` (it can do its job).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

async fn live() -> Json<Health> {
    Json(Health {
        status: "up",
        checks: Vec::new(),
    })
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => Check {
            name: "database",
            status: "up",
            detail: None,
        },
        Err(error) => Check {
            name: "database",
            status: "down",
            detail: Some(error.to_string()),
        },
    };
    let up = database.status == "up";
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if up { "up" } else { "down" },
            checks: vec![database],
        }),
    )
}
