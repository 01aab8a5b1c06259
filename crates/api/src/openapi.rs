//! The API contract: an OpenAPI 3.1 document generated from the handlers and types, served
//! at `/openapi.json`, and a Swagger UI at `/docs` whose assets are compiled in (works
//! without internet access).

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wallet Hub API",
        description = "Wallets, deposits, withdrawals and transfers. Amounts are decimal strings with the currency's scale; errors are RFC 9457 problem+json with a stable `type` per kind; every POST accepts an `Idempotency-Key`."
    ),
    paths(
        crate::users::create_user,
        crate::users::get_user,
        crate::users::list_wallets,
        crate::wallets::create_wallet,
        crate::wallets::get_wallet,
        crate::wallets::deposit,
        crate::wallets::withdraw,
        crate::wallets::freeze,
        crate::wallets::unfreeze,
        crate::wallets::close,
        crate::wallets::reads::history,
        crate::wallets::reads::activity,
        crate::transfers::transfer,
        crate::notifications::list,
    ),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "users"),
        (name = "wallets"),
        (name = "transfers"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
