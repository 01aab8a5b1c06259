//! The crash tests' failpoints, on the `fail` crate. They exist only in builds with the
//! `failpoints` feature of this crate (or of `outbox`), which only the tests crate turns on;
//! in any other build `fail::fail_point!` expands to nothing.
//!
//! Code marks a crash point with [`crash_point`] and a fault point with
//! `fail::fail_point!(NAME, |_| <the failure to return>)`. A test arms them in a child
//! process through the environment, which `fail` reads when the process calls
//! `fail::FailScenario::setup()`:
//! - crash points: `FAILPOINTS=<name>=return` makes the process abort when it reaches
//!   `<name>` (no unwinding, no cleanup, like a kill -9);
//! - fault points: `FAILPOINTS=<name>=1*return` makes one call fail, once.

/// Crash point: after a consumer's effect committed, before its offset is stored.
pub const CONSUMER_AFTER_EFFECT: &str = "consumer-after-effect";
/// Crash point: after the relay's messages were acknowledged, before the outbox rows are
/// marked sent.
pub const RELAY_AFTER_PRODUCE: &str = "relay-after-produce";

/// Fault point: the producer's enqueue fails with librdkafka's fatal error code, as every
/// produce call does once librdkafka declared the instance unusable (fenced, fatal
/// idempotence error).
pub const PRODUCER_FATAL: &str = "producer-fatal";

/// Aborts the process, like a kill -9, if crash point `name` is armed; does nothing in a
/// build without the failpoints.
#[inline]
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn crash_point(name: &str) {
    fail::fail_point!(name, |_| {
        eprintln!("failpoint {name} hit: aborting");
        std::process::abort()
    });
}
