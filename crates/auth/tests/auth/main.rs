//! The `auth` crate's behaviour as the API sees it: config in, tokens checked, principals out.

mod config;
mod jwks;
mod support;
mod verify;
