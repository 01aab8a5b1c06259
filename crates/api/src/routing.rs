//! Routing and layering, in one place: every route of the API and, around them, the
//! middleware in the order a request meets it (outermost first):
//!
//! 1. request context: correlation id, the request's span (continuing `traceparent`);
//! 2. absolute problem `type` URIs (`api.problem_base_url`);
//! 3. the request timeout ([`crate::limits::deadline`]);
//! 4. the body limit;
//! 5. for the documented `/v1` routes only: authentication ([`crate::caller::authenticate`]),
//!    the per-principal rate limits ([`crate::limits::rate_limit`]) and write shedding
//!    ([`crate::limits::shed_writes`]);
//! 6. the handler.
//!
//! `/openapi.json`, `/docs`, `/asyncapi.json`, `/schemas/*` and `/problems/*` need no token.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    ApiConfig, AppState, analytics, caller, context, contracts, error, holds, limits,
    notifications, openapi, problem_types, transfers, users, wallets,
};

/// Every documented route with its handler, and the document describing them.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(users::router())
        .merge(wallets::router())
        .merge(transfers::router())
        .merge(holds::router())
        .merge(notifications::router())
        .merge(analytics::router())
}

/// The whole API (see the module docs for the order of its layers).
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    let limits = Arc::new(limits::Limits::new(config));
    let (routes, document) = routes().split_for_parts();
    let document = openapi::finish(document, config.idempotency_ttl_hours);
    let documented = routes
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&limits),
            limits::shed_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            caller::Authenticator::new(state.verifier.clone()),
            caller::authenticate,
        ))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document));
    documented
        .merge(contracts::router())
        .merge(problem_types::router())
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout_ms,
            limits::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::<str>::from(config.problem_base_url.trim_end_matches('/')),
            problem_types::absolute_types,
        ))
        .layer(axum::middleware::from_fn(context::request_context))
        .with_state(state)
}
