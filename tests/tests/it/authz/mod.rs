//! Who may do what (docs/security.md), tried against the real service: every endpoint with
//! good and bad tokens, the scopes, idempotency keys bound to their caller, the actor on
//! history and events, and no token or key in the logs.

mod actor;
mod bola;
mod idempotency;
mod logs;
mod scopes;
mod snapshot;
mod tokens;
mod world;
