//! Who is calling: bearer access tokens (JWT, RFC 9068 profile) verified against an identity
//! provider's published keys, turned into a [`Principal`].
//!
//! What this crate owns:
//! - [`AuthConfig`]: the `[auth]` settings, validated when read (`none`/HS* algorithms, a
//!   non-https JWKS URL, a leeway over 60 s are refused with a message naming the key).
//! - [`Verifier`]: loads the JWKS at startup and answers [`Verifier::verify`] with a
//!   [`Principal`] or a [`TokenError`]. The signature is checked with the key named by the
//!   token's `kid`, with an algorithm that is both allowed and right for that key; `iss`,
//!   `aud`, `exp` and `sub` are required and `nbf` honoured, within the leeway. Keys are cached
//!   for the JWKS's `max-age` within configured bounds, and an unknown `kid` refetches the
//!   JWKS at most once per interval (`cache.rs`). JOSE itself is `jsonwebtoken`'s.
//! - [`Principal`]: identity (`iss`, `sub`) and scopes (`scope`, or `scp`).
//! - [`dev`]: a local issuer for trying the service without an identity provider.
//!
//! Every [`TokenError`] is for logs and metrics ([`TokenError::reason`]); callers answer all of
//! them alike (401 `invalid_token`). Tokens are never logged and no error holds one.
//!
//! Layout: `config.rs` (settings), `jwks.rs` (loading keys), `cache.rs` (how long keys are
//! trusted, when they are refetched), `verifier.rs` (checks), `verified.rs` (tokens
//! verified a moment ago, answered from memory until their `exp`),
//! `principal.rs` (claims to identity), `dev.rs` (development issuer).
//!
//! # What a deployment must configure
//!
//! Three settings from the identity provider, the same for Keycloak, Auth0 and Entra ID:
//!
//! | key | what | Keycloak | Auth0 | Entra ID |
//! |---|---|---|---|---|
//! | `issuer` | the tokens' `iss`, verbatim | `https://HOST/realms/REALM` | `https://TENANT.auth0.com/` | `https://login.microsoftonline.com/TENANT_ID/v2.0` |
//! | `audience` | this API's identifier, the tokens' `aud` | the client/audience mapper value | the API identifier | the application ID URI or client id |
//! | `jwks` | the public keys (`jwks_uri` of the issuer's `/.well-known/openid-configuration`) | `https://HOST/realms/REALM/protocol/openid-connect/certs` | `https://TENANT.auth0.com/.well-known/jwks.json` | `https://login.microsoftonline.com/TENANT_ID/discovery/v2.0/keys` |
//!
//! Optional: `leeway_seconds` (default 30, at most 60), `algorithms` (default
//! `["RS256", "ES256", "EdDSA"]`), `require_at_jwt_typ` (default `false`, since Keycloak and
//! Entra ID type their access tokens `JWT`; set it where the issuer writes `at+jwt`). Entra ID
//! issues v2.0 tokens (with that `iss`) only when the API's manifest sets
//! `requestedAccessTokenVersion: 2`.
//!
//! Keys are cached in memory for the JWKS's `Cache-Control: max-age`, bounded by
//! `jwks_cache_min_seconds` (default 60) and `jwks_cache_max_seconds` (default 900): a key the
//! issuer withdraws is refused at most that long after. A token naming an unknown `kid` (a
//! rotation) refetches at once, at most once per `jwks_unknown_kid_refetch_seconds` (default
//! 10). While the JWKS cannot be fetched, the keys fetched before stay trusted (a warning
//! says so).

pub mod dev;

mod cache;
mod config;
mod jwks;
mod principal;
mod verified;
mod verifier;

pub use config::{
    AuthConfig, ConfigError, DEFAULT_LEEWAY_SECONDS, JwksSource, MAX_LEEWAY_SECONDS,
    SigningAlgorithm,
};
pub use jwks::{JwksError, MAX_JWKS_BYTES};
pub use principal::Principal;
pub use verifier::{TokenError, Untrusted, Verifier, VerifierError};
