//! The API contract: an OpenAPI 3.1 document generated from the handlers and types, served
//! at `/openapi.json`, and a Swagger UI at `/docs` whose assets are compiled in (works
//! without internet access).
//!
//! A route is written once, in its handler's `#[utoipa::path]`: [`crate::routing::routes`]
//! builds the axum routes and the document's paths from the same attributes
//! (`utoipa_axum::routes!`), so the two cannot disagree. The pieces that operations share are derived once: [`headers`] for
//! request headers, [`problems`] for the problem answers.

pub mod headers;
pub mod problems;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi};

/// What the document says beyond its paths; [`crate::routing::routes`] adds those.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wallet Hub API",
        description = "Wallets, deposits, withdrawals and transfers. Amounts are decimal strings \
                       with the currency's scale; errors are RFC 9457 problem+json with a stable \
                       `type` per kind; every POST accepts an `Idempotency-Key`."
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&BearerSecurity),
    tags((name = "users"), (name = "wallets"), (name = "transfers"), (name = "holds"), (name = "analytics"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The name of the bearer scheme in the document (`/docs` has an Authorize button for it).
const BEARER: &str = "bearer";

/// Declares the bearer scheme and, on every operation, that it needs a token and may
/// answer 401: every `/v1` route sits behind [`crate::caller::authenticate`], so this is
/// said once, here, for all of them.
#[derive(Debug)]
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An OAuth 2.0 access token (JWT, RFC 9068) from the configured issuer. \
                 Scopes: `wallets:deposit` (deposits), `wallets:admin` (freeze, unfreeze, \
                 read anything); users need none for their own resources.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
        let unauthorized = ResponseBuilder::new()
            .description("invalid-token: no bearer token, or one that is not valid")
            .content(
                crate::error::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                operation.security =
                    Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                operation
                    .responses
                    .responses
                    .insert("401".to_owned(), unauthorized.clone().into());
            }
        }
    }
}

/// Says once what every operation shares: the tracing headers it reads, the correlation id
/// of every answer, `Idempotent-Replayed` on the answers an `Idempotency-Key` can replay
/// (successes and the refusals stored with the key, 409 and 422).
#[derive(Debug)]
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let tracing = headers::TracingHeaders::into_params(|| None);
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let parameters = operation.parameters.get_or_insert_with(Vec::new);
                let idempotent = parameters
                    .iter()
                    .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"));
                parameters.extend(tracing.iter().cloned().map(RefOr::T));
                for (status, response) in &mut operation.responses.responses {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    response.headers.insert(
                        "X-Correlation-Id".to_owned(),
                        headers::correlation_id().into(),
                    );
                    let replayable = status.starts_with('2') || status == "409" || status == "422";
                    if idempotent && replayable {
                        response.headers.insert(
                            "Idempotent-Replayed".to_owned(),
                            headers::idempotent_replayed().into(),
                        );
                    }
                }
            }
        }
    }
}

/// The links that let a client (or a stateful test) go from what it created to what it
/// can do with it: a new user to its wallets and notifications; a new wallet to its
/// money movements, holds, status changes and reads; a new hold to its capture, void and
/// read.
#[derive(Debug)]
struct Links;

/// `(operation that creates, operations that take its id as "id")`.
const LINKS: [(&str, &[&str]); 3] = [
    (
        "create_user",
        &["get_user", "list_wallets", "list_notifications"],
    ),
    (
        "create_wallet",
        &[
            "get_wallet",
            "deposit",
            "withdraw",
            "history",
            "activity",
            "freeze",
            "unfreeze",
            "close",
            "place_hold",
            "list_holds",
            "balance_at",
            "statement",
        ],
    ),
    ("place_hold", &["get_hold", "capture_hold", "void_hold"]),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let Some((_, targets)) = LINKS
                    .iter()
                    .find(|(source, _)| operation.operation_id.as_deref() == Some(*source))
                else {
                    continue;
                };
                let Some(RefOr::T(created)) = operation.responses.responses.get_mut("201") else {
                    continue;
                };
                for target in *targets {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/id")
                        .build();
                    created.links.insert((*target).to_owned(), link.into());
                }
            }
        }
    }
}

/// The description of every `Idempotency-Key` parameter, with how long answers are kept
/// (`api.idempotency_ttl_hours`), so the document says what this deployment does.
#[derive(Debug)]
pub(crate) struct IdempotencyTtl(pub u32);

impl Modify for IdempotencyTtl {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let description = format!(
            "Makes retries safe: the first answer to a key is stored for {} h \
             (`api.idempotency_ttl_hours`) and replayed to the same caller for the same \
             method, path and body",
            self.0
        );
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter
                        && parameter.name == "Idempotency-Key"
                    {
                        parameter.description = Some(description.clone());
                    }
                }
            }
        }
    }
}

/// The operations of a path item.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// The document's paths with what [`ApiDoc`]'s modifiers add to every operation, for a
/// deployment that keeps idempotency answers `ttl_hours`.
pub(crate) fn finish(
    mut document: utoipa::openapi::OpenApi,
    ttl_hours: u32,
) -> utoipa::openapi::OpenApi {
    BearerSecurity.modify(&mut document);
    CommonHeaders.modify(&mut document);
    Links.modify(&mut document);
    IdempotencyTtl(ttl_hours).modify(&mut document);
    document
}

/// The document served at `/openapi.json` by a deployment that keeps idempotency answers
/// `ttl_hours` (`api.idempotency_ttl_hours`).
pub fn document(ttl_hours: u32) -> utoipa::openapi::OpenApi {
    let (_, document) = crate::routing::routes().split_for_parts();
    finish(document, ttl_hours)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::document;

    /// `(method, path, operation)` of every documented operation.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("path item");
                methods
                    .iter()
                    .map(|(method, operation)| (method.clone(), path.clone(), operation.clone()))
            })
            .collect()
    }

    #[test]
    fn every_operation_documents_the_problems_that_any_request_can_cause() {
        let doc = serde_json::to_value(document(24)).expect("document as JSON");
        let operations = operations(&doc);
        assert_eq!(operations.len(), 24, "every operation is in the document");
        for (method, path, operation) in operations {
            let responses = &operation["responses"];
            // Every operation reads an id or a JSON body (400) and can fail on the server.
            let mut expected = vec!["400", "500", "503"];
            if operation.get("requestBody").is_some() {
                expected.extend(["413", "415"]);
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if parameters.iter().any(|p| p["name"] == "If-Match") {
                expected.push("412");
            }
            if parameters.iter().any(|p| p["name"] == "Idempotency-Key") {
                expected.push("409");
                let conflict = responses["409"]["description"].as_str().unwrap_or_default();
                assert!(
                    conflict.contains("idempotency-in-flight"),
                    "{method} {path}: 409 names idempotency-in-flight, got {conflict:?}"
                );
            }
            for status in expected {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }

    #[test]
    fn every_post_accepts_an_idempotency_key_and_every_operation_the_tracing_headers() {
        let doc = serde_json::to_value(document(24)).expect("document as JSON");
        for (method, path, operation) in operations(&doc) {
            let headers: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .filter_map(|p| p["name"].as_str())
                .collect();
            // Changes of one wallet (or hold) are conditional on its version; reading a
            // wallet can be.
            let wallet_change = method == "post"
                && (path.starts_with("/v1/wallets/{id}/") || path.starts_with("/v1/holds/{id}/"));
            let expected: &[&str] = if wallet_change {
                &[
                    "Idempotency-Key",
                    "If-Match",
                    "X-Correlation-Id",
                    "traceparent",
                ]
            } else if method == "post" {
                &["Idempotency-Key", "X-Correlation-Id", "traceparent"]
            } else if path == "/v1/wallets/{id}" {
                &["If-None-Match", "X-Correlation-Id", "traceparent"]
            } else {
                &["X-Correlation-Id", "traceparent"]
            };
            assert_eq!(headers, expected, "{method} {path}");
            for (status, response) in operation["responses"].as_object().expect("responses") {
                assert!(
                    response["headers"]["X-Correlation-Id"].is_object(),
                    "{method} {path} {status} declares X-Correlation-Id"
                );
                let replayable = status.starts_with('2') || status == "409" || status == "422";
                assert_eq!(
                    response["headers"]["Idempotent-Replayed"].is_object(),
                    method == "post" && replayable,
                    "{method} {path} {status}: Idempotent-Replayed where a replay can answer"
                );
            }
        }
    }

    #[test]
    fn the_idempotency_key_states_the_configured_ttl_and_the_grammar_the_server_checks() {
        let doc = serde_json::to_value(document(72)).expect("document as JSON");
        let mut seen = 0;
        for (method, path, operation) in operations(&doc) {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for key in parameters.iter().filter(|p| p["name"] == "Idempotency-Key") {
                seen += 1;
                let description = key["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains("72 h"),
                    "{method} {path}: {description}"
                );
                let pattern = key["schema"]["pattern"].as_str().expect("a pattern");
                let regex = regex::Regex::new(pattern).expect("the pattern compiles");
                for (value, valid) in [
                    ("k".repeat(255), true),
                    ("k".repeat(256), false),
                    (String::new(), false),
                    ("a b".to_owned(), false),
                    ("~!".to_owned(), true),
                    ("é".to_owned(), false),
                ] {
                    assert_eq!(regex.is_match(&value), valid, "document on {value:?}");
                    assert_eq!(
                        crate::grammar::idempotency_key(&value).is_ok(),
                        valid,
                        "server on {value:?}"
                    );
                }
            }
        }
        assert!(seen > 0, "some operation takes an Idempotency-Key");
    }

    #[test]
    fn what_is_created_links_to_what_can_be_done_with_it() {
        let doc = serde_json::to_value(document(24)).expect("document as JSON");
        let ids: Vec<String> = operations(&doc)
            .iter()
            .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
            .collect();
        for (path, expected) in [
            (
                "/v1/users",
                &["get_user", "list_wallets", "list_notifications"][..],
            ),
            (
                "/v1/wallets",
                &[
                    "get_wallet",
                    "deposit",
                    "withdraw",
                    "history",
                    "activity",
                    "close",
                    "place_hold",
                    "statement",
                ][..],
            ),
            (
                "/v1/wallets/{id}/holds",
                &["get_hold", "capture_hold", "void_hold"][..],
            ),
        ] {
            let links = &doc["paths"][path]["post"]["responses"]["201"]["links"];
            for target in expected {
                assert_eq!(links[target]["operationId"], *target, "{path} -> {target}");
                assert_eq!(links[target]["parameters"]["id"], "$response.body#/id");
                assert!(
                    ids.iter().any(|id| id == target),
                    "{target} is an operation"
                );
            }
        }
        let created = &doc["paths"]["/v1/wallets"]["post"]["responses"]["201"];
        assert!(created["headers"]["Location"].is_object());
    }

    #[test]
    fn request_schemas_carry_the_rules_the_server_enforces() {
        let doc = serde_json::to_value(document(24)).expect("document as JSON");
        let schemas = &doc["components"]["schemas"];
        for name in [
            "CreateUserRequest",
            "CreateWalletRequest",
            "AmountRequest",
            "TransferRequest",
        ] {
            assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        }
        let user = &schemas["CreateUserRequest"]["properties"];
        assert_eq!(user["email"]["format"], "email");
        assert_eq!(user["email"]["maxLength"], 254);
        assert_eq!(user["name"]["maxLength"], 100);
        assert!(user["name"]["pattern"].is_string());
        let currencies = schemas["CreateWalletRequest"]["properties"]["currency"]["enum"]
            .as_array()
            .expect("currency enum");
        assert!(currencies.iter().any(|c| c == "USD"));
        assert!(!currencies.iter().any(|c| c == "XAU"));
        for name in ["AmountRequest", "TransferRequest"] {
            assert!(schemas[name]["properties"]["amount"]["pattern"].is_string());
        }
        let params = doc["paths"]["/v1/wallets/{id}/transactions"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let limit = params.iter().find(|p| p["name"] == "limit").expect("limit");
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&1.into(), &200.into())
        );
    }

    #[test]
    fn every_error_answer_is_documented_as_a_problem() {
        let doc = serde_json::to_value(document(24)).expect("document as JSON");
        for (method, path, operation) in operations(&doc) {
            let responses = operation["responses"].as_object().expect("responses");
            let errors = responses
                .iter()
                .filter(|(s, _)| s.starts_with('4') || s.starts_with('5'));
            for (status, response) in errors {
                let content = response["content"].as_object().expect("content");
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
