//! The event contracts, served beside `/openapi.json` and like it without a token:
//! `/asyncapi.json` (the AsyncAPI 3.0 document of our topics, with this deployment's topic
//! names) and `/schemas/<CloudEvent type>.json` (the JSON Schema each event's
//! `dataschema` names). Both are built once at startup from `event_bindings`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::EventType;
use event_bindings::EventBindings;
use event_bindings::schemas::{schema_file, schema_text};
use http::header::CONTENT_TYPE;

use crate::{ApiError, AppState};

/// Media type of a JSON Schema document.
const SCHEMA_JSON: &str = "application/schema+json";

/// The documents, rendered once; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventContracts(Arc<Documents>);

#[derive(Debug)]
struct Documents {
    asyncapi: String,
    /// File name (`<type>.json`) -> schema text, as committed under `schemas/`.
    schemas: HashMap<String, String>,
}

impl EventContracts {
    /// The contracts of `bindings` (topics and schema base), whose consumers read
    /// `consumed` and dead-letter to `<topic><dead_letter_suffix>`.
    pub fn new(bindings: &EventBindings, dead_letter_suffix: &str, consumed: &[EventType]) -> Self {
        let asyncapi =
            event_bindings::asyncapi::document_text(bindings, dead_letter_suffix, consumed);
        let schemas = EventType::ALL
            .into_iter()
            .map(|t| (schema_file(t), schema_text(t)))
            .collect();
        Self(Arc::new(Documents { asyncapi, schemas }))
    }
}

/// `/asyncapi.json` and `/schemas/{file}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/asyncapi.json", get(asyncapi))
        .route("/schemas/{file}", get(schema))
}

async fn asyncapi(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.event_contracts.0.asyncapi.clone(),
    )
        .into_response()
}

async fn schema(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    match state.event_contracts.0.schemas.get(&file) {
        Some(text) => ([(CONTENT_TYPE, SCHEMA_JSON)], text.clone()).into_response(),
        None => ApiError::NotFound {
            resource: "schema",
            id: file,
        }
        .into_response(),
    }
}
