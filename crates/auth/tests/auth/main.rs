//! The `auth` crate's behaviour as the API sees it: config in, tokens checked, principals out.

mod config;
mod dev_issuer;
mod jwks;
mod support;
mod verify;
